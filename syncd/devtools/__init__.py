"""Developer tools: vendor simulators and the demo; imported lazily."""
