"""Encoders (backbones) and heads."""
