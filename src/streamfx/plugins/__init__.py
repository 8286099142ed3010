"""Plugins: the hooks a plugin can implement (``hookspecs``) and the one manager (``manager``)."""
