#!/usr/bin/env bash
# How `talk --duplex full` copes with laptop speakers, on a private PulseAudio server with an
# echo path: everything played on the virtual speaker also reaches the virtual microphone
# (module-loopback, 30 ms), as a laptop's speakers reach its microphone. With `cancel`, the
# session listens and speaks through PulseAudio's WebRTC echo canceller (module-echo-cancel).
#
# Usage: scripts/echo_path.sh plain|cancel [BARGE_S]
#   Plays a recorded question into the microphone; with BARGE_S, plays a second recording
#   BARGE_S seconds after the question ended, over the reply. Prints each turn and each
#   interruption (what of the reply was heard before it).
# Needs: pulseaudio, pulseaudio-utils, libasound2-plugins (`make setup` installs them), the
# default models, ../shared/audio. Never touches the user's own sound server.
set -euo pipefail

mode=${1:?plain or cancel}
barge_s=${2:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
audio="$repo/../shared/audio/speech"
work=$(mktemp -d /tmp/voiceagent-echo.XXXXXX)
export PULSE_RUNTIME_PATH="$work" PULSE_SERVER="unix:$work/native"
stop() { pulseaudio --kill >/dev/null 2>&1 || true; rm -rf "$work"; }
trap stop EXIT

pulseaudio -n --daemonize=yes --exit-idle-time=-1 --log-target=file:"$work/pulse.log" \
    --load="module-null-sink sink_name=mic" --load="module-null-sink sink_name=speaker" \
    --load=module-native-protocol-unix
for _ in $(seq 100); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
# The room. *_dont_move: the loopback must stay put when the default sink changes below, or
# it would feed the speaker back into itself.
pactl load-module module-loopback source=speaker.monitor sink=mic latency_msec=30 \
    sink_dont_move=true source_dont_move=true >/dev/null
if [ "$mode" = cancel ]; then
    pactl load-module module-echo-cancel aec_method=webrtc source_master=mic.monitor \
        sink_master=speaker source_name=cancelled_mic sink_name=cancelled_speaker >/dev/null
    pactl set-default-source cancelled_mic
    pactl set-default-sink cancelled_speaker
else
    pactl set-default-source mic.monitor
    pactl set-default-sink speaker
fi

"$repo/.venv/bin/python" -m voiceagent talk --jsonl --duplex full --no-log >"$work/events.jsonl" &
talk=$!
sleep 8  # the models load
paplay --device=mic "$audio/cmu_arctic_us_axb_a0005.wav"  # "Will we ever forget it."
if [ -n "$barge_s" ]; then
    sleep "$barge_s"
    paplay --device=mic "$audio/LJ001-0002.wav"  # "in being comparatively modern."
fi
sleep 12  # the reply plays out
kill -TERM "$talk"
wait "$talk" || true
"$repo/.venv/bin/python" - "$work/events.jsonl" <<'EOF'
import json
import sys

for line in open(sys.argv[1]):
    event = json.loads(line)
    if event["event"] == "turn":
        print(f"{event['t_s']:6.2f} s  turn: {event['user_text']!r}")
    elif event["event"] == "interrupted":
        print(f"{event['t_s']:6.2f} s  interrupted after {event['played_text']!r}")
EOF
