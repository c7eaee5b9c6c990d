"""Devices that vanish mid-session on a real sound server: the null sinks are unloaded while we
capture or play (PortAudio's stream stops, as when a headset is unplugged), then loaded again;
the microphone and the speaker must come back on their own."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pytest

from voiceagent.audio.recovery import DeviceNotice, NoticeKind, ReopenPolicy
from voiceagent.audio.sources import MicrophoneSource
from voiceagent.audio.speaker import SpeakerSink

if TYPE_CHECKING:  # only for annotations: conftest is not importable as a module
    from .conftest import PulseServer

pytestmark = [pytest.mark.audio, pytest.mark.usefixtures("pulse_server")]

POLICY = ReopenPolicy(first_delay_s=0.25, max_delay_s=1.0, give_up_after_s=20.0)
AWAY_S = 1.0  # how long the devices stay unloaded
SCENARIO_TIMEOUT_S = 60.0


def null_sink_modules(server: PulseServer) -> list[str]:
    listed = server.run("pactl", "list", "short", "modules").stdout
    return [line.split()[0] for line in listed.splitlines() if "module-null-sink" in line]


def unload_devices(server: PulseServer) -> None:
    for module in null_sink_modules(server):
        server.run("pactl", "unload-module", module)


def load_devices(server: PulseServer) -> None:
    """Load the null sinks again, as conftest.py set them up."""
    listed = server.run("pactl", "list", "short", "sinks").stdout
    for name in ("mic", "speaker"):
        if not any(line.split()[1] == name for line in listed.splitlines() if line.strip()):
            server.run("pactl", "load-module", "module-null-sink", f"sink_name={name}")
    server.run("pactl", "set-default-source", "mic.monitor")
    server.run("pactl", "set-default-sink", "speaker")


@pytest.fixture
def devices_restored(pulse_server: PulseServer) -> Iterator[PulseServer]:
    """Whatever happens in the test, later tests find the server as conftest.py left it."""
    try:
        yield pulse_server
    finally:
        load_devices(pulse_server)


class NoticeEvents:
    """Notices as asyncio events (the microphone reports on the loop's thread; the speaker on
    its own, so everything goes through ``call_soon_threadsafe``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: list[DeviceNotice] = []
        self.events = {kind: asyncio.Event() for kind in NoticeKind}

    def __call__(self, notice: DeviceNotice) -> None:
        self.loop.call_soon_threadsafe(self._take, notice)

    def _take(self, notice: DeviceNotice) -> None:
        self.items.append(notice)
        self.events[notice.kind].set()

    async def wait(self, kind: NoticeKind) -> None:
        waits = [asyncio.ensure_future(self.events[k].wait()) for k in (kind, NoticeKind.GAVE_UP)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        if self.events[NoticeKind.GAVE_UP].is_set():
            pytest.fail(f"the device did not come back: {self.items[-1].message}")


def test_capture_recovers_when_the_input_device_vanishes(devices_restored: PulseServer) -> None:
    server = devices_restored

    async def scenario() -> tuple[list[int], int, MicrophoneSource, NoticeEvents]:
        notices = NoticeEvents(asyncio.get_running_loop())
        source = MicrophoneSource(reopen=POLICY, on_notice=notices)
        indices: list[int] = []
        after_recovery = 0

        async def pull_the_plug() -> None:
            await asyncio.to_thread(unload_devices, server)
            await notices.wait(NoticeKind.LOST)
            await asyncio.sleep(AWAY_S)  # real time: the server is really without devices
            await asyncio.to_thread(load_devices, server)

        plug: asyncio.Task[None] | None = None
        async with contextlib.aclosing(source.frames()) as frames:
            async for frame in frames:
                indices.append(frame.sample_index)
                if plug is None and len(indices) == 25:
                    plug = asyncio.ensure_future(pull_the_plug())
                if notices.events[NoticeKind.RECOVERED].is_set():
                    after_recovery += 1
                    if after_recovery == 50:  # 1.6 s of audio from the reopened device
                        break
        assert plug is not None
        await plug
        return indices, after_recovery, source, notices

    indices, after_recovery, source, notices = asyncio.run(
        asyncio.wait_for(scenario(), SCENARIO_TIMEOUT_S)
    )
    kinds = [notice.kind for notice in notices.items]
    assert kinds == [NoticeKind.LOST, NoticeKind.RECOVERED], [n.message for n in notices.items]
    assert after_recovery == 50
    assert np.all(np.diff(indices) == 512), "the audio clock must run on without a jump"
    assert (source.device_loss_count, source.device_reopen_count) == (1, 1)


def test_playback_recovers_when_the_output_device_vanishes(
    devices_restored: PulseServer,
) -> None:
    server = devices_restored

    async def scenario() -> tuple[SpeakerSink, NoticeEvents, int]:
        notices = NoticeEvents(asyncio.get_running_loop())
        sink = await asyncio.to_thread(SpeakerSink.open, None, None, POLICY, notices)
        try:
            await asyncio.to_thread(unload_devices, server)
            await notices.wait(NoticeKind.LOST)
            await asyncio.sleep(AWAY_S)
            await asyncio.to_thread(load_devices, server)
            await notices.wait(NoticeKind.RECOVERED)
            before = sink.played_samples
            sink.write(np.full(sink.output_rate_hz // 2, 0.2, np.float32), sink.output_rate_hz)
            await sink.drain()  # returns once the reopened device has taken it all
            return sink, notices, sink.played_samples - before
        finally:
            await asyncio.to_thread(sink.close)

    sink, notices, played = asyncio.run(asyncio.wait_for(scenario(), SCENARIO_TIMEOUT_S))
    assert [notice.kind for notice in notices.items] == [NoticeKind.LOST, NoticeKind.RECOVERED]
    assert played == sink.output_rate_hz // 2
    assert (sink.device_loss_count, sink.device_reopen_count) == (1, 1)
