"""Test helpers: fakes and local stand-ins for external services (loopback only)."""

from llmcompiler_graph.testing.tavily_stub import DEFAULT_CORPUS, RecordedRequest, TavilyStub

__all__ = ["DEFAULT_CORPUS", "RecordedRequest", "TavilyStub"]
