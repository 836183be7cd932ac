"""Sub-commands of ``proficio``; every module here is registered automatically by `web.cli`."""
