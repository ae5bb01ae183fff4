"""Intent engines behind one interface: embedded (in-process) and Rasa server (HTTP), with
failover and evaluation; entity extraction (entities.py) shared by both; Russian phone numbers
(phones.py) and postal addresses (address.py) for whoever reads them. Imports no other package
of ours."""
