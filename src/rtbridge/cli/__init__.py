"""The ``rtbridge`` command: ``main`` parses and dispatches; the admin verbs, offers, trunks
and webhooks each have a module, and ``fields`` turns API fields into options."""
