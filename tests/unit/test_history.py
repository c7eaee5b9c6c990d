"""ConversationHistory: the prompt stays under its token budget and is trimmed in big steps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiceagent.errors import UsageError
from voiceagent.history import ConversationHistory, join_said
from voiceagent.interfaces import ChatMessage, Role

pytestmark = pytest.mark.unit

OVERHEAD = 4


def words(text: str) -> int:
    """A fake tokenizer: one token per word."""
    return len(text.split())


def history(
    budget: int = 100, system: str = "be brief", trim_to_fraction: float = 0.5
) -> ConversationHistory:
    return ConversationHistory(
        system,
        words,
        budget,
        trim_to_fraction=trim_to_fraction,
        message_overhead_tokens=OVERHEAD,
    )


def exact_prompt_tokens(messages: list[ChatMessage]) -> int:
    """Independent count: every message plus the reply header."""
    return sum(words(m.content) + OVERHEAD for m in messages) + OVERHEAD


def sentence(n_words: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n_words))


def test_messages_keep_order_with_system_first() -> None:
    h = history()
    h.add_user("hello there")
    h.add_assistant("hi")
    h.add_user("how are you")
    assert h.messages() == [
        ChatMessage(Role.SYSTEM, "be brief"),
        ChatMessage(Role.USER, "hello there"),
        ChatMessage(Role.ASSISTANT, "hi"),
        ChatMessage(Role.USER, "how are you"),
    ]
    assert h.prompt_tokens() == exact_prompt_tokens(h.messages())
    assert len(h) == 2


def test_no_trim_while_under_budget() -> None:
    h = history(budget=200)
    for i in range(5):
        h.add_user(sentence(5, f"u{i}_"))
        h.add_assistant(sentence(5, f"a{i}_"))
    assert h.trims == 0
    assert len(h) == 5


def test_trims_oldest_turns_down_to_half_the_budget_at_once() -> None:
    h = history(budget=100)
    # system: 2 + 4; header: 4; each turn: (5 + 4) + (5 + 4) = 18 tokens.
    for i in range(5):
        h.add_user(sentence(5, f"u{i}_"))
        h.add_assistant(sentence(5, f"a{i}_"))
    assert h.prompt_tokens() == 10 + 5 * 18 == 100
    assert h.trims == 0
    h.add_user(sentence(5, "u5_"))  # 109 > 100: drop down to <= 50
    assert h.trims == 1
    assert h.prompt_tokens() <= 50
    kept = h.messages()
    assert kept[0] == ChatMessage(Role.SYSTEM, "be brief")
    assert kept[-1] == ChatMessage(Role.USER, sentence(5, "u5_"))
    # Oldest turns went first, whole: 10 + 18 + 9 = 37 <= 50, while keeping u3 would be 55.
    users = [m.content for m in kept if m.role == Role.USER]
    assert users == [sentence(5, "u4_"), sentence(5, "u5_")]
    assert h.prompt_tokens() == 37
    assert kept[1].role == Role.USER


def test_after_a_trim_the_next_turns_only_append() -> None:
    """The point of big steps: after one trim, several turns pass with an unchanged prefix."""
    h = history(budget=100)
    prefixes_changed = 0
    previous: list[ChatMessage] = []
    for i in range(30):
        h.add_user(sentence(5, f"u{i}_"))
        current = h.messages()
        if current[: len(previous)] != previous:
            prefixes_changed += 1
        h.add_assistant(sentence(5, f"a{i}_"))
        previous = h.messages()
        assert h.prompt_tokens() <= 100
    # 30 turns of 18 tokens in a 100-token budget: one-at-a-time trimming would change the
    # prefix on almost every turn once full; halving changes it about once per 3 turns.
    assert h.trims == prefixes_changed
    assert prefixes_changed <= 12


def test_one_at_a_time_trimming_is_what_a_fraction_of_one_gives() -> None:
    h = history(budget=100, trim_to_fraction=1.0)
    for i in range(30):
        h.add_user(sentence(5, f"u{i}_"))
        h.add_assistant(sentence(5, f"a{i}_"))
    big_steps = history(budget=100)
    for i in range(30):
        big_steps.add_user(sentence(5, f"u{i}_"))
        big_steps.add_assistant(sentence(5, f"a{i}_"))
    assert big_steps.trims * 2 < h.trims


def test_system_prompt_is_never_dropped() -> None:
    h = history(budget=60, system="you are a careful assistant")
    for i in range(50):
        h.add_user(sentence(8, f"u{i}_"))
        h.add_assistant(sentence(8, f"a{i}_"))
        assert h.messages()[0] == ChatMessage(Role.SYSTEM, "you are a careful assistant")


def test_barge_in_keeps_only_what_was_played() -> None:
    h = history()
    h.add_user("tell me a story")
    h.add_assistant("once upon a time there was a dragon who loved tea")
    h.replace_last_assistant("once upon a time")
    assert h.messages()[-1] == ChatMessage(Role.ASSISTANT, "once upon a time")
    assert h.prompt_tokens() == exact_prompt_tokens(h.messages())


def test_barge_in_before_the_reply_was_added() -> None:
    h = history()
    h.add_user("tell me a story")
    h.replace_last_assistant("once upon")
    assert h.messages()[-1] == ChatMessage(Role.ASSISTANT, "once upon")


def test_nothing_played_forgets_the_reply_and_merges_the_next_user_turn() -> None:
    h = history()
    h.add_user("what is the weather")
    h.add_assistant("it is sunny")
    h.replace_last_assistant("")
    h.add_user("actually tell me a joke")
    assert h.messages() == [
        ChatMessage(Role.SYSTEM, "be brief"),
        ChatMessage(Role.USER, "what is the weather actually tell me a joke"),
    ]


def test_words_transcribed_again_with_what_followed_replace_their_first_transcript() -> None:
    h = history()
    h.add_user("what is the weather")
    h.add_assistant("it is sunny")
    h.replace_last_assistant("")  # the user went on at once: nothing was heard
    h.add_user("what is the weather in Paris", says_again="what is the weather")
    assert h.messages()[-1] == ChatMessage(Role.USER, "what is the weather in Paris")
    assert len(h) == 1


def test_only_the_end_said_again_is_replaced() -> None:
    # "tell me a joke" was merged in earlier (text only); the last words are said again.
    assert join_said("tell me a joke about cats", "about cats and dogs", "about cats") == (
        "tell me a joke about cats and dogs"
    )
    assert join_said("about cats", "about cats and dogs", "about cats") == "about cats and dogs"
    # Words that are not at the end are not touched: the text is added as it is.
    assert join_said("hello there", "and more", "something else") == "hello there and more"
    assert join_said("the bobcats", "cats and dogs", "cats") == "the bobcats cats and dogs"
    assert join_said("", "hi", "") == "hi"
    # Answered turns are never rewritten.
    h = history()
    h.add_user("what is the weather")
    h.add_assistant("it is sunny")
    h.add_user("what is the weather in Paris", says_again="what is the weather")
    users = [m.content for m in h.messages() if m.role is Role.USER]
    assert users == ["what is the weather", "what is the weather in Paris"]


def test_replace_without_any_turn_is_an_error() -> None:
    with pytest.raises(ValueError):
        history().replace_last_assistant("hi")


def test_add_assistant_twice_is_an_error() -> None:
    h = history()
    h.add_user("hi")
    h.add_assistant("hello")
    with pytest.raises(ValueError):
        h.add_assistant("hello again")


def test_a_single_huge_user_turn_keeps_its_newest_words() -> None:
    h = history(budget=40)
    h.add_user(sentence(100, "w"))
    assert h.prompt_tokens() <= 40
    text = h.messages()[-1].content
    assert text.endswith("w99")
    assert text.split() == [f"w{i}" for i in range(100 - len(text.split()), 100)]


def test_a_user_who_always_cuts_in_early_does_not_change_the_prompt_start_every_turn() -> None:
    """Every reply forgotten: the user's words pile up in one message. Shortening it only
    just under the budget would drop its first words on every later turn (and with them the
    cached prompt); it is shortened to half the budget, as a trim of whole turns is."""
    h = history(budget=100)
    first_words: list[str] = []
    for i in range(40):
        h.add_user(sentence(6, f"u{i}_"))
        message = h.messages()[-1].content
        assert h.prompt_tokens() <= 100
        assert message.endswith(f"u{i}_5")
        first_words.append(message.split()[0])
        h.replace_last_assistant("")
    prefixes_changed = sum(a != b for a, b in zip(first_words, first_words[1:], strict=False))
    # 240 words through a 100-token budget: shortened about every 7 turns, not every turn.
    assert 3 <= prefixes_changed <= 8
    assert len(h) == 1


def test_a_huge_reply_keeps_its_first_words() -> None:
    h = history(budget=40)
    h.add_user("hi")
    h.add_assistant(sentence(100, "r"))
    assert h.prompt_tokens() <= 40
    reply = h.messages()[-1]
    assert reply.role == Role.ASSISTANT
    assert reply.content.startswith("r0 r1")


def test_system_prompt_too_long_for_the_budget_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="history_tokens"):
        history(budget=10, system=sentence(20, "s"))


operations = st.lists(
    st.tuples(
        st.sampled_from(["user", "assistant", "replace"]),
        st.integers(min_value=0, max_value=60),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops=operations, budget=st.integers(min_value=30, max_value=300))
def test_prompt_never_exceeds_the_budget(ops: list[tuple[str, int]], budget: int) -> None:
    h = history(budget=budget)
    for kind, n_words in ops:
        text = sentence(n_words, kind[0])
        if kind == "user":
            h.add_user(text)
        elif kind == "assistant":
            if not len(h) or h.messages()[-1].role == Role.ASSISTANT:
                continue
            h.add_assistant(text)
        elif len(h):
            h.replace_last_assistant(" ".join(text.split()[: n_words // 2]))
        messages = h.messages()
        assert h.prompt_tokens() == exact_prompt_tokens(messages)
        assert h.prompt_tokens() <= budget
        assert messages[0].role == Role.SYSTEM
        roles = [m.role for m in messages[1:]]
        # Roles alternate, starting with the user.
        assert all(r == (Role.USER if i % 2 == 0 else Role.ASSISTANT) for i, r in enumerate(roles))
