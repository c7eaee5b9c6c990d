"""The conversation the language model sees: a system prompt plus turns, under a token budget.

Why trimming is done in big steps: llama.cpp keeps the previous prompt in its KV cache and only
evaluates the tokens after the longest common prefix. Appending a turn keeps that prefix, so a
reply costs only its new tokens. Dropping the oldest turn changes everything right after the
system prompt, so the whole remaining conversation is evaluated again. Trimming one turn at a
time once the budget is reached would pay that full re-evaluation on *every* turn; dropping down
to about half the budget at once pays it once, then the next several turns are cheap again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voiceagent.errors import UsageError
from voiceagent.interfaces import ChatMessage, Role

# Chat templates wrap each message in a few tokens (ChatML: "<|im_start|>role\n ... <|im_end|>\n");
# the reply header the template appends is counted as one more message.
DEFAULT_MESSAGE_OVERHEAD_TOKENS = 6


def join_said(earlier: str, text: str, says_again: str = "") -> str:
    """What the user said in all: ``earlier``, then ``text``.

    When the user went on after a pause we took for the end of their turn, the words before
    the pause are transcribed again together with the rest (one transcript of the whole
    sentence is better than two halves). ``says_again`` names those words: if ``earlier`` ends
    with them, ``text`` replaces them instead of repeating them.
    """
    earlier, text, says_again = earlier.strip(), text.strip(), says_again.strip()
    if says_again and earlier.endswith(says_again):
        before = earlier[: len(earlier) - len(says_again)]
        if not before or before[-1].isspace():  # whole words only
            earlier = before.rstrip()
    return f"{earlier} {text}".strip()


@dataclass
class _Turn:
    user: str
    assistant: str | None = None


class ConversationHistory:
    """System prompt plus user/assistant turns whose prompt never exceeds ``budget_tokens``.

    ``count_tokens`` measures a piece of text in the model's tokens. Pure logic: no model, no
    clock. Not thread-safe; the session owns it.
    """

    def __init__(
        self,
        system_prompt: str,
        count_tokens: Callable[[str], int],
        budget_tokens: int,
        *,
        trim_to_fraction: float = 0.5,
        message_overhead_tokens: int = DEFAULT_MESSAGE_OVERHEAD_TOKENS,
    ) -> None:
        if not 0.0 < trim_to_fraction <= 1.0:
            raise ValueError("trim_to_fraction must be in (0, 1]")
        self.system_prompt = system_prompt
        self._count = count_tokens
        self.budget_tokens = budget_tokens
        self.trim_to_fraction = trim_to_fraction
        self.message_overhead_tokens = message_overhead_tokens
        self._turns: list[_Turn] = []
        self.trims = 0  # how many times old turns were dropped (each one costs a re-evaluation)
        self._system_tokens = self._message_tokens(system_prompt)
        # The smallest useful prompt: system, a user message and a reply, the reply header.
        if self._system_tokens + 3 * message_overhead_tokens + 2 > budget_tokens:
            raise UsageError(
                f"the system prompt is {self._system_tokens} tokens, too long for a history "
                f"budget of {budget_tokens} tokens.",
                fix="shorten system_prompt or raise history_tokens in the settings.",
            )

    # -- changes ------------------------------------------------------------------------------

    def add_user(self, text: str, says_again: str = "") -> None:
        """Add what the user said. Right after an unanswered user turn (the reply was cut off
        before a word was played), the two are merged so roles keep alternating.

        ``says_again``: the words at the end of that unanswered turn which ``text`` transcribes
        anew, together with what the user went on to say (see :func:`join_said`).
        """
        text = text.strip()
        if self._turns and self._turns[-1].assistant is None:
            last = self._turns[-1]
            last.user = join_said(last.user, text, says_again)
        else:
            self._turns.append(_Turn(text))
        self._fit()

    def add_assistant(self, text: str) -> None:
        """Add the assistant's reply to the latest user turn."""
        if not self._turns or self._turns[-1].assistant is not None:
            raise ValueError("add_assistant needs a user turn to answer")
        self._turns[-1].assistant = text.strip()
        self._fit()

    def replace_last_assistant(self, text_actually_played: str) -> None:
        """After a barge-in: keep only what the user actually heard of the last reply.

        Works whether or not the full reply was added before. If nothing was heard, the reply
        is forgotten and the user turn stays unanswered.
        """
        if not self._turns:
            raise ValueError("there is no turn to put a reply in")
        played = text_actually_played.strip()
        self._turns[-1].assistant = played or None
        self._fit()

    def clear(self) -> None:
        self._turns.clear()

    # -- views --------------------------------------------------------------------------------

    def messages(self) -> list[ChatMessage]:
        """System prompt first, then the turns, oldest first."""
        result = [ChatMessage(Role.SYSTEM, self.system_prompt)]
        for turn in self._turns:
            result.append(ChatMessage(Role.USER, turn.user))
            if turn.assistant is not None:
                result.append(ChatMessage(Role.ASSISTANT, turn.assistant))
        return result

    def prompt_tokens(self) -> int:
        """The estimated prompt size, including the reply header the template adds."""
        total = self._system_tokens + self.message_overhead_tokens
        return total + sum(self._turn_tokens(turn) for turn in self._turns)

    def __len__(self) -> int:
        """Number of turns (a user message and its reply, if any)."""
        return len(self._turns)

    # -- budget -------------------------------------------------------------------------------

    def _message_tokens(self, text: str) -> int:
        return self._count(text) + self.message_overhead_tokens

    def _turn_tokens(self, turn: _Turn) -> int:
        tokens = self._message_tokens(turn.user)
        if turn.assistant is not None:
            tokens += self._message_tokens(turn.assistant)
        return tokens

    def _fit(self) -> None:
        if self.prompt_tokens() <= self.budget_tokens:
            return
        target = int(self.budget_tokens * self.trim_to_fraction)
        total = self.prompt_tokens()
        while len(self._turns) > 1 and total > target:
            total -= self._turn_tokens(self._turns.pop(0))
        self.trims += 1
        if total > self.budget_tokens:
            self._shorten_last_turn()

    def _shorten_last_turn(self) -> None:
        """One turn alone is over budget: keep the end of what the user said (the newest words)
        and the start of the reply (what was heard first), in ``trim_to_fraction`` of the room.

        The same fraction as a trim of whole turns, not just under the budget: a user
        who keeps cutting the replies off in their first sentence builds one ever longer
        message, and shortening it to the budget each time changed its start (and so the whole
        prompt llama.cpp had cached) on every turn."""
        turn = self._turns[-1]
        fixed = self._system_tokens + 2 * self.message_overhead_tokens
        room = max(1, int((self.budget_tokens - fixed) * self.trim_to_fraction))
        if turn.assistant is not None:
            room -= self.message_overhead_tokens
            user_room = max(room // 2, room - self._count(turn.assistant))
            turn.user = self._keep_within(turn.user, user_room, keep_end=True)
            assistant_room = room - self._count(turn.user)
            turn.assistant = self._keep_within(turn.assistant, assistant_room, keep_end=False)
        else:
            turn.user = self._keep_within(turn.user, room, keep_end=True)

    def _keep_within(self, text: str, max_tokens: int, *, keep_end: bool) -> str:
        """The longest run of whole words from one end of ``text`` that fits ``max_tokens``."""
        if self._count(text) <= max_tokens:
            return text
        words = text.split()
        low, high = 0, len(words)  # number of words kept
        while low < high:
            middle = (low + high + 1) // 2
            kept = words[-middle:] if keep_end else words[:middle]
            if self._count(" ".join(kept)) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        kept = words[-low:] if keep_end and low else words[:low]
        return " ".join(kept)
