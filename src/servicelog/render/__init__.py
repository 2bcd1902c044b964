"""Renderers turn a record into the bytes (``json``) or text (``console``) a sink writes."""
