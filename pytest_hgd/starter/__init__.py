"""The files ``hgd init`` writes into a repository: a starter prompt, a stand-in agent, an
example pair file and the GitHub Actions workflow of the pre-merge gate (data, read with
`importlib.resources`; `hgd_agent` is also importable, so its tests run it)."""
