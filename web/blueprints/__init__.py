"""Blueprints per audience: ``auth``, ``candidate``, ``recruiter``, ``psychometrician``, ``api``."""
