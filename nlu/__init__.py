"""Intent engines behind one interface: embedded (in-process) and Rasa server (HTTP)."""
