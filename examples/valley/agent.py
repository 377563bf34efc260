"""An offline stand-in for an LLM agent at Sunvalley Solar: deterministic, no I/O.

The agent phones homeowners who asked about solar panels and tries to book a free home
survey (the lead). It reads known instruction sentences from the system prompt (matched
case-insensitively, in any order), finds the customer's intent in the last message, and
composes the reply from the blocks the prompt switches on.

One instruction wins over another: "Never give prices or savings figures on the phone."
suppresses every figure the agent would otherwise give (it knows the price sheet), so
adding instructions about figures cannot help while it stays in the prompt.
"""

from __future__ import annotations

import re

# Every instruction the agent understands: rule name -> the sentence a prompt uses for it.
# A prompt switches a rule on when it contains the rule's PATTERN (case-insensitive).
CATALOGUE = {
    "name": "You are Robin, calling homeowners for Sunvalley Solar.",
    "offer_survey": "Always offer a free home survey.",
    "ask_day": "Ask which day suits the customer once they agree to a survey.",
    "confirm_day": "Confirm the survey day back to the customer.",
    "no_figures": "Never give prices or savings figures on the phone.",
    "polite_exit": "When a customer is not interested, thank them and end the call politely.",
    "ask_bill": "Ask for the customer's monthly electricity bill when you introduce yourself.",
    "short": "Keep replies under 15 words.",
}
PATTERNS = {
    "name": r"\byou are ([a-z]+)",
    "offer_survey": r"always offer a free home survey",
    "ask_day": r"ask which day suits the customer",
    "confirm_day": r"confirm the survey day",
    "no_figures": r"never give prices or savings figures",
    "polite_exit": r"when a customer is not interested, thank them",
    "ask_bill": r"ask for the customer's monthly electricity bill",
    "short": r"under (\d+) words",
}

# Checked in order: the first intent with a keyword (whole words) in the last message wins.
INTENT_KEYWORDS = (
    ("not_interested", ("not interested", "stop calling", "no thanks", "no thank you",
                        "don't call", "remove me", "waste of time", "forget it")),
    ("financing", ("financing", "finance", "loan", "monthly", "a month", "installments")),
    ("battery", ("battery", "batteries", "storage")),
    ("savings", ("save", "saving", "savings", "pay for itself", "pay for themselves",
                 "payback", "pay back", "worth it")),
    ("price", ("how much", "price", "prices", "cost", "costs", "quote", "expensive",
               "figure", "figures", "number", "numbers", "ballpark")),
    ("roof", ("roof", "shade", "shady", "tiles", "slate")),
)  # fmt: skip
AGREE = ("yes", "yeah", "sure", "ok", "okay", "fine", "go on", "book it", "sounds good", "alright")
DAY = re.compile(
    r"\b((?:next )?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow)"
    r"(?: (?:morning|afternoon|evening))?)\b"
)
SIZES = (  # (words in the customer's message, kW, installed price)
    (("small", "flat", "bungalow", "two-bedroom"), 3, 5_900),
    (("large", "big", "four-bedroom", "five-bedroom"), 6, 10_900),
)
TYPICAL = (4, 7_800)
SURVEY_OFFER = "Shall I book you a free home survey?"
NO_FIGURES = "I can't give figures on the phone: the surveyor works them out at the free visit."


def rules_in(prompt: str) -> set[str]:
    """The rules the prompt switches on."""
    return {name for name, pattern in PATTERNS.items() if re.search(pattern, prompt, re.I)}


def reply(prompt: str, messages: list[dict]) -> str:
    """The agent's next reply to the conversation `messages` under the system `prompt`."""
    rules = rules_in(prompt)
    text = messages[-1]["content"].lower()
    intent = detect_intent(text)
    said = [m["content"].lower() for m in messages if m["role"] == "user"]
    parts = compose(intent, said, rules, agent_name(prompt))
    closing = intent in ("agree", "day") or (intent == "not_interested" and "polite_exit" in rules)
    if "offer_survey" in rules and not closing:
        parts.append(SURVEY_OFFER)
    return shorten(" ".join(parts), word_limit(prompt))


def detect_intent(text: str) -> str:
    """The customer's intent in one lowercased message."""
    for intent, keywords in INTENT_KEYWORDS:
        if any(re.search(rf"\b{re.escape(keyword)}\b", text) for keyword in keywords):
            return intent
    if DAY.search(text):
        return "day"
    if any(re.match(rf"{re.escape(word)}\b", text) for word in AGREE):
        return "agree"
    if re.search(r"\b(hi|hello|hey)\b", text) or "who is this" in text:
        return "greeting"
    return "other"


def compose(intent: str, said: list[str], rules: set[str], name: str | None) -> list[str]:
    """The sentences that answer `intent` (the customer's messages `said`, lowercased, the
    last one last), shaped by the prompt's `rules`."""
    text = said[-1]
    if intent in ("price", "savings", "battery", "financing"):
        return [NO_FIGURES] if "no_figures" in rules else [figures(intent, said)]
    if intent == "greeting":
        who = f"{name} from Sunvalley Solar" if name else "Sunvalley Solar"
        bill = ["What is your monthly electricity bill?"] if "ask_bill" in rules else []
        return [f"Hi, this is {who}.", *bill]
    if intent == "roof":
        return ["Most roofs suit panels; the surveyor checks the direction and the shade."]
    if intent == "agree":
        if "ask_day" in rules:
            return ["Great. Which day suits you for the survey?"]
        return ["Great, someone from our team will be in touch to arrange it."]
    if intent == "day":
        day = DAY.search(text)
        if "confirm_day" in rules and day:
            return [f"Perfect, the surveyor will visit you {capitalize(day.group(1))}. Goodbye!"]
        return ["Perfect, we will confirm the visit by email. Goodbye!"]
    if intent == "not_interested":
        if "polite_exit" in rules:
            return ["I understand. Thank you for your time, and goodbye!"]
        return ["I understand. The survey is free and there is no obligation."]
    return ["Happy to answer any questions about solar panels."]


def figures(intent: str, said: list[str]) -> str:
    """The figure the price sheet gives for the question; a system's size follows the home
    the customer described last."""
    if intent == "savings":
        return "Most homes save about $600 a year, so the panels pay for themselves in 12 years."
    if intent == "battery":
        return "Our 10 kWh home battery costs $4,500 installed."
    if intent == "financing":
        return "With our financing a typical system comes to about $75 a month over 10 years."
    for text in reversed(said):
        words = set(re.findall(r"[a-z-]+", text))
        for keys, kw, price in SIZES:
            if words & set(keys):
                return f"A {kw} kW system for a home like yours costs about ${price:,} installed."
    kw, price = TYPICAL
    return f"A {kw} kW system for a home like yours costs about ${price:,} installed."


def capitalize(day: str) -> str:
    """'next thursday morning' -> 'next Thursday morning'."""
    return " ".join(
        w.capitalize() if w.endswith("day") and w != "today" else w for w in day.split()
    )


def agent_name(prompt: str) -> str | None:
    """NAME from 'You are NAME', if the prompt says it."""
    match = re.search(PATTERNS["name"], prompt, re.I)
    return match.group(1).capitalize() if match else None


def word_limit(prompt: str) -> int | None:
    """N from 'under N words' in the prompt, if present."""
    match = re.search(PATTERNS["short"], prompt, re.I)
    return int(match.group(1)) if match else None


def shorten(text: str, limit: int | None) -> str:
    """Whole sentences while the reply stays under `limit` words; at least the first one."""
    if limit is None:
        return text
    kept: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if kept and len(" ".join([*kept, sentence]).split()) >= limit:
            break
        kept.append(sentence)
    return " ".join(" ".join(kept).split()[: limit - 1])


def single_edits(prompt: str) -> list[tuple[str, str]]:
    """Every single-instruction edit of `prompt`: (description, new prompt). Drops remove a
    line holding a known instruction; adds append a catalogue instruction the prompt lacks."""
    lines = prompt.splitlines()
    edits = []
    for index, line in enumerate(lines):
        found = rules_in(line)
        if found:
            rest = "\n".join(lines[:index] + lines[index + 1 :]) + "\n"
            edits.append((f"drop {'+'.join(sorted(found))}: {line.strip()!r}", rest))
    present = rules_in(prompt)
    for rule, sentence in CATALOGUE.items():
        if rule not in present:
            edits.append(
                (f"add {rule}: {sentence!r}", prompt.rstrip("\n") + "\n" + sentence + "\n")
            )
    return edits
