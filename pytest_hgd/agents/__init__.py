"""Agents: the Python callable, the OpenAI-compatible HTTP agent, its transport and worker
processes, the judge."""
