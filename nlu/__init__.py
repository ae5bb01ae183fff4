"""Intent engines behind one interface: embedded (in-process) and Rasa server (HTTP); entity
extraction (entities.py) and Russian phone numbers (phones.py) shared by both."""
