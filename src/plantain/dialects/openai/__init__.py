"""The OpenAI Images API dialect (openai SDK)."""
