"""A stand-in agent for pytest-hgd, written by `hgd init`: replace it with your agent.

pytest-hgd calls ``reply(prompt, messages)`` once per pair and prompt (``hgd_agent`` in the
pytest configuration names this function). ``prompt`` is the system prompt under test;
``messages`` is the conversation so far, oldest first, as ``{"role": "assistant" | "user",
"content": str}``, ending with the customer's message. Return the agent's reply (a string).
It may be ``async def``.

This stand-in calls no model, so the gate runs offline and deterministically from the first
``pytest --hgd``: it says, in order, every line of the prompt that starts with ``Say:``
(and a plain thank-you when there is none). Edit those lines in the prompt and its replies
change, so the gate has something to catch. Replace the body with a call to your model, e.g.

    response = client.chat.completions.create(
        model="...", messages=[{"role": "system", "content": prompt}, *messages]
    )
    return response.choices[0].message.content

or set ``hgd_agent = openai:MODEL`` to use pytest-hgd's OpenAI-compatible client instead.
Cached replies are keyed by this module's source, so editing it re-calls the agent.
"""

from __future__ import annotations


def reply(prompt: str, messages: list[dict[str, str]]) -> str:
    """The agent's next reply to ``messages`` under the system ``prompt``."""
    said = [
        line.strip()[len("say:") :].strip()
        for line in prompt.splitlines()
        if line.strip().lower().startswith("say:")
    ]
    return " ".join(said) if said else "Thanks for your message."
