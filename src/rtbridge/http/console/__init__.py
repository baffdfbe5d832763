"""The operator console (issue 10): server-rendered pages under ``/console`` over the same
admin service layer as the JSON API and the CLI."""
