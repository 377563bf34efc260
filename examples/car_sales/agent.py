"""An offline stand-in for an LLM sales agent at Acme Motors: deterministic, no I/O.

It reads known instruction sentences from the system prompt, detects the customer's
intent from the last message, and composes the reply from the blocks the prompt
switches on. Change the prompt and the replies change, like a real (if tiny) model.
"""

from __future__ import annotations

import re

PRICE_LIST = {
    "ridge": {"name": "Ridge", "category": "suv", "price": 31_900,
              "about": "our compact SUV, with all-wheel drive as standard"},
    "summit": {"name": "Summit", "category": "suv", "price": 42_500,
               "about": "our seven-seat family SUV"},
    "metro": {"name": "Metro", "category": "sedan", "price": 24_300,
              "about": "our city sedan, rated at 41 miles per gallon"},
    "sprint": {"name": "Sprint", "category": "sedan", "price": 28_900,
               "about": "our sporty midsize sedan"},
    "volta": {"name": "Volta", "category": "ev", "price": 38_900,
              "about": "our electric crossover, with 290 miles of range"},
}  # fmt: skip
CATEGORY_WORDS = {"suv": "suv", "suvs": "suv", "sedan": "sedan", "sedans": "sedan",
                  "electric": "ev", "ev": "ev", "evs": "ev"}  # fmt: skip
CATEGORY_NAMES = {"suv": "SUVs", "sedan": "sedans", "ev": "electric cars"}

# Instruction sentences the agent understands (matched case-insensitively in the prompt).
RULES = {
    "offer_rep": r"always offer a call from a sales rep",
    "never_quote": r"never quote prices",
    "quote": r"quote the starting price",
    "test_drive": r"offer a test drive",
    "confirm_time": r"confirm the callback time",
    "polite_exit": r"when a customer is not interested, thank them",
    "monthly": r"give a monthly payment estimate",
    "appraisal": r"offer a free trade-in appraisal",
    "offers": r"mention today's offers",
    "ask_model": r"ask which model",
    "compare": r"mention the other model of the same type",
}

# Checked in order: the first intent with a keyword (whole words) in the last message wins.
INTENT_KEYWORDS = (
    ("not_interested", ("not interested", "no thanks", "no thank you", "stop calling",
                        "don't call", "remove me", "not looking")),
    ("test_drive", ("test drive", "drive it")),
    ("trade_in", ("trade",)),
    ("financing", ("financing", "finance", "monthly", "a month", "loan", "lease", "payment")),
    ("deals", ("deal", "deals", "offers", "discount", "promotion")),
    ("price", ("how much", "price", "cost", "expensive")),
)  # fmt: skip
AGREE_WORDS = ("yes", "yeah", "sure", "ok", "okay", "yep", "please", "absolutely")
TIME = re.compile(
    r"\b(today|tomorrow|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|morning|afternoon|evening|(?:at|after|before) \d{1,2}(?::\d\d)? ?(?:am|pm)?)\b"
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
REP_OFFER = "Would you like a sales rep to call you back?"


def reply(prompt: str, messages: list[dict]) -> str:
    """The agent's next reply to the conversation `messages` under the system `prompt`."""
    rules = {name for name, pattern in RULES.items() if re.search(pattern, prompt, re.I)}
    text = messages[-1]["content"].lower()
    intent = detect_intent(text)
    model = last_model(messages)
    parts = compose(intent, text, model, rules, agent_name(prompt))
    closing = intent in ("agree", "callback") or (
        intent == "not_interested" and "polite_exit" in rules
    )
    if "offer_rep" in rules and not closing:
        parts.append(REP_OFFER)
    return shorten(" ".join(parts), word_limit(prompt))


def detect_intent(text: str) -> str:
    """The customer's intent in one lowercased message."""
    for intent, keywords in INTENT_KEYWORDS:
        if any(re.search(rf"\b{re.escape(keyword)}\b", text) for keyword in keywords):
            return intent
    words = re.findall(r"[a-z0-9']+", text)
    if TIME.search(text):
        return "callback"
    if words and (words[0] in AGREE_WORDS or "sounds good" in text or "that works" in text):
        return "agree"
    if any(word in PRICE_LIST or word in CATEGORY_WORDS for word in words):
        return "model"
    if {"hi", "hello", "hey"} & set(words) or "who is this" in text:
        return "greeting"
    return "other"


def last_model(messages: list[dict]) -> str | None:
    """The model (price-list key) mentioned most recently in the conversation, if any."""
    for message in reversed(messages):
        found = [w for w in re.findall(r"[a-z0-9]+", message["content"].lower()) if w in PRICE_LIST]
        if found:
            return found[-1]
    return None


def compose(intent: str, text: str, model: str | None, rules: set[str], name: str) -> list[str]:
    """The sentences that answer `intent`, shaped by the prompt's `rules`."""
    car = PRICE_LIST[model] if model else None
    if intent == "greeting":
        ask = ["Which model are you interested in?"] if "ask_model" in rules else []
        return [f"Hi, this is {name} from Acme Motors.", *ask]
    if intent == "model":
        category = next(
            (CATEGORY_WORDS[w] for w in re.findall(r"[a-z]+", text) if w in CATEGORY_WORDS), None
        )
        if car and car["name"].lower() in text:
            answer = f"The {car['name']} is {car['about']}."
            other = sibling(model) if "compare" in rules and model else None
            if other:
                answer += f" Many buyers compare it with the {other}."
        elif category:
            names = [c["name"] for c in PRICE_LIST.values() if c["category"] == category]
            answer = f"For {CATEGORY_NAMES[category]} we have the {' and the '.join(names)}."
        else:
            answer = "We have SUVs, sedans and an electric crossover."
        drive = ["I can also book you a test drive."] if "test_drive" in rules else []
        return [answer, *drive]
    if intent == "price":
        if "quote" in rules:
            if car:
                return [f"The {car['name']} starts at ${car['price']:,}."]
            return ["Which model would you like a price for?"]
        if "never_quote" in rules:
            return ["I can't quote prices on the phone, but a sales rep can walk you through them."]
        return ["Prices depend on the trim and options."]
    if intent == "financing":
        if "monthly" in rules and car:
            monthly = round(car["price"] / 60)
            return [f"The {car['name']} comes to about ${monthly:,} a month over 60 months."]
        return ["We offer financing through Acme Finance."]
    if intent == "trade_in":
        if "appraisal" in rules:
            return ["We can give you a free trade-in appraisal at the dealership."]
        return ["We accept trade-ins."]
    if intent == "deals":
        if "offers" in rules:
            return ["Today we have 1.9% APR on all sedans and $1,000 off the Volta."]
        return ["Our offers change often."]
    if intent == "test_drive":
        where = f"drive the {car['name']}" if car else "book a test drive"
        return [f"Of course, you can {where} at our dealership this week."]
    if intent == "agree":
        return ["Great. When is a good time for a sales rep to call you?"]
    if intent == "callback":
        time = callback_time(text)
        if "confirm_time" in rules and time:
            return [f"Perfect, a sales rep will call you {time}. Thank you, goodbye!"]
        return ["Perfect, someone from our team will be in touch. Thank you, goodbye!"]
    if intent == "not_interested":
        if "polite_exit" in rules:
            return ["I understand. Thank you for your time, and have a great day. Goodbye!"]
        return ["I understand, but today's offers end soon."]
    return ["Happy to help with any questions about our cars."]


def sibling(model: str) -> str | None:
    """The name of the other model of the same type, if there is exactly one."""
    others = [
        c["name"]
        for key, c in PRICE_LIST.items()
        if key != model and c["category"] == PRICE_LIST[model]["category"]
    ]
    return others[0] if len(others) == 1 else None


def callback_time(text: str) -> str:
    """The callback time the customer named, e.g. 'Friday morning' or 'tomorrow at 5pm'."""
    found = [m.group(1) for m in TIME.finditer(text)]
    return " ".join(word.capitalize() if word in WEEKDAYS else word for word in found)


def agent_name(prompt: str) -> str:
    """The agent's name from 'You are NAME', else Sam."""
    match = re.search(r"\byou are ([A-Z][a-z]+)", prompt)
    return match.group(1) if match else "Sam"


def word_limit(prompt: str) -> int | None:
    """N from 'under N words' in the prompt, if present."""
    match = re.search(r"under (\d+) words", prompt, re.I)
    return int(match.group(1)) if match else None


def shorten(reply_text: str, limit: int | None) -> str:
    """Whole sentences while the reply stays under `limit` words; at least the first one."""
    if limit is None:
        return reply_text
    sentences = re.split(r"(?<=[.!?])\s+", reply_text)
    kept: list[str] = []
    for sentence in sentences:
        if kept and len(" ".join([*kept, sentence]).split()) >= limit:
            break
        kept.append(sentence)
    if len(" ".join(kept).split()) >= limit:
        return " ".join(" ".join(kept).split()[: limit - 1])
    return " ".join(kept)
