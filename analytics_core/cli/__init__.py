"""Command-line layers over the library: parse, call, render."""
