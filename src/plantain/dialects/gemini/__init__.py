"""The Gemini API dialect (google-genai SDK, Vertex AI paths)."""
