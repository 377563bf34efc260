"""Writes pairs/*.hgd.yaml: the synthetic calls of the valley example (run from anywhere).

Each call is a list of customer turns. The agent's turns in the history are what the agent
said under prompts/start.txt (the recorded call); a locked pair's `reply` is that recorded
reply, a corrected pair's is what a reviewer wrote (the figure the customer asked for, or a
polite goodbye). The checks say what made the reply right.

    python examples/valley/make_pairs.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from agent import CATALOGUE, reply  # noqa: E402

OPENER = (
    "Hi, this is Robin from Sunvalley Solar. You asked about solar panels: have you got a minute?"
)
START = (HERE / "prompts" / "start.txt").read_text(encoding="utf-8")
# What a reviewer would have the agent say: the figures (and, for corrected goodbyes, an exit).
REVIEWED = START.replace(CATALOGUE["no_figures"] + "\n", "") + CATALOGUE["polite_exit"] + "\n"

# A turn: (pair id, kind, customer message, checks). Kind "-" is history only (no pair).
GREETINGS = ("Hi, yes. Who is this again?", "Hello? Who is this?", "Hi, go ahead. Who is this?")
HESITATIONS = (
    "I'm not interested if it means taking out a loan.",
    "Honestly, I'm not interested in a sales pitch.",
    "I'm not interested if you'll pressure me into signing.",
)
AGREES = (
    "Okay, if there's no obligation, go on then.",
    "Alright, book it.",
    "Fine, let's do the survey.",
)
DAYS = ("Thursday morning", "next Monday afternoon", "tomorrow afternoon", "Saturday morning")
QUESTIONS = {  # intent: (first question, asks again, the corrected pair's checks)
    "price": (
        "Roughly how much would panels cost for my house?",
        "Can't you give me even a ballpark?",
        [{"regex": "\\$\\d"}, {"not_contains": "can't give figures"}],
    ),
    "small": (
        "It's a small bungalow. How much would that cost?",
        "Come on, just a rough price?",
        [{"contains": "$5,900"}],
    ),
    "large": (
        "We have a big four-bedroom house. What's the price?",
        "Surely you know a ballpark figure?",
        [{"contains": "$10,900"}],
    ),
    "savings": (
        "How much would I save on my bills?",
        "So when would the panels pay for themselves?",
        [{"contains": "years"}, {"regex": "\\$\\d"}],
    ),
    "battery": (
        "What does a battery cost on top?",
        "Just a rough number for the battery storage?",
        [{"contains": "kWh"}, {"regex": "\\$\\d"}],
    ),
    "financing": (
        "Could I pay for it monthly?",
        "What would the monthly payment be, roughly?",
        [{"contains": "a month"}, {"max_chars": 200}],
    ),
}
QUIT = ("Forget it, I'm not interested.", "No thanks, stop calling me.", "This is a waste of time.")
PAIR_TAGS = {"greeting": "greeting", "hesitation": "hesitation", "agrees": "booking",
             "survey-day": "booking", "not-interested": "not-interested"}  # fmt: skip
QUIT_CHECKS = [{"contains": "thank"}, {"not_contains": "survey"}]
# Three lead calls where the customer took "the surveyor works them out" well: locked.
LOCKED_FIGURES = {"call-3001", "call-3010", "call-3012"}
ACCEPTED = "Can you give me a price now, or is that for the visit?"
ACCEPTED_CHECKS = [{"contains": "surveyor"}, {"not_contains": "$"}]


def lead_call(n: int) -> tuple[str, list[tuple[str, str, str, list | None]], list[str]]:
    """Lead call n (0-based): greeting, figures, a hesitation, agreement, the survey day."""
    name = f"call-{3001 + n}"
    day = DAYS[n % len(DAYS)]
    turns: list[tuple[str, str, str, list | None]] = [
        ("greeting", "locked", GREETINGS[n % 3], [{"contains": ["Robin", "free home survey"]}])
    ]
    if name in LOCKED_FIGURES:
        turns.append(("price", "locked", ACCEPTED, ACCEPTED_CHECKS))
        intent = "accepted"
    else:
        intent = list(QUESTIONS)[n % len(QUESTIONS)]
        first, again, checks = QUESTIONS[intent]
        turns += [(intent, "corrected", first, checks), ("asks-again", "corrected", again, checks)]
    turns += [
        (
            "hesitation",
            "locked",
            HESITATIONS[n % 3],
            None if n % 2 else [{"contains": "obligation"}],
        ),
        ("agrees", "locked", AGREES[n % 3], [{"contains": "which day"}]),
        ("survey-day", "locked", f"{day[0].upper()}{day[1:]} works for me.", [{"contains": day}]),
    ]
    return name, turns, [tag(intent)]


def no_lead_call(n: int) -> tuple[str, list[tuple[str, str, str, list | None]], list[str]]:
    """No-lead call n: asks for a figure twice, is refused twice, gives up."""
    intent = list(QUESTIONS)[(n + 3) % len(QUESTIONS)]
    first, again, checks = QUESTIONS[intent]
    turns: list[tuple[str, str, str, list | None]] = [
        ("greeting", "-", GREETINGS[n % 3], None),
        (intent, "corrected", first, checks),
        ("asks-again", "corrected", again, checks),
        ("not-interested", "corrected", QUIT[n % 3], QUIT_CHECKS),
    ]
    return f"call-{4001 + n}", turns, [tag(intent)]


def tag(intent: str) -> str:
    return {"small": "price", "large": "price", "accepted": "price"}.get(intent, intent)


def render(name: str, outcome: str, turns: list, tags: list[str]) -> str:
    """The pair file's YAML: every turn with a kind other than '-' becomes a pair."""
    out = [
        f"# {'Lead' if outcome == 'lead' else 'No-lead'} call (synthetic; make_pairs.py).",
        f"conversation: {name}",
        f"outcome: {outcome}",
        f"tags: [{', '.join(tags)}]",
        "pairs:",
    ]
    history = [("agent", OPENER)]
    for pair_id, kind, customer, checks in turns:
        recorded = reply(START, messages(history, customer))
        if kind != "-":
            wanted = recorded if kind == "locked" else reply(REVIEWED, messages(history, customer))
            out += [f"  - id: {pair_id}", f"    kind: {kind}", "    history:"]
            out += [f"      - {who}: {q(text)}" for who, text in history]
            out += [f"    customer: {q(customer)}", f"    reply: {q(wanted)}"]
            out.append(f"    tags: [{PAIR_TAGS.get(pair_id, 'figures')}]")
            if checks:
                out.append("    checks:")
                out += [
                    f"      - {key}: {json.dumps(arg)}" for c in checks for key, arg in c.items()
                ]
        history += [("customer", customer), ("agent", recorded)]
    return "\n".join(out) + "\n"


def messages(history: list[tuple[str, str]], customer: str) -> list[dict]:
    roles = {"agent": "assistant", "customer": "user"}
    return [{"role": roles[w], "content": t} for w, t in history] + [
        {"role": "user", "content": customer}
    ]


def q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def main() -> None:
    folder = HERE / "pairs"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.hgd.yaml"):
        old.unlink()
    calls = [(*lead_call(n), "lead") for n in range(12)]
    calls += [(*no_lead_call(n), "no_lead") for n in range(16)]
    for name, turns, tags, outcome in calls:
        (folder / f"{name}.hgd.yaml").write_text(
            render(name, outcome, turns, tags), encoding="utf-8"
        )
    print(f"wrote {len(calls)} files to {folder}")


if __name__ == "__main__":
    main()
