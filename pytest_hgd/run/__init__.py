"""One gate run: prompts, the concurrent scheduler, the evaluator, rollouts and the probe."""
