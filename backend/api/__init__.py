"""The OpenAI-style HTTP surface: request parsing (schemas), bearer auth, error shapes."""
