"""OpenAI chat completions with image output, as OpenRouter serves them (docs/chat.md)."""
