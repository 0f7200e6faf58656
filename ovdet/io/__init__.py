"""Conversions between ovdet's types and the outside: drawing, formats, known weights, checkpoint import."""
