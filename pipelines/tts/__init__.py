"""Speech synthesis backends (one file per backend beside base.py)."""
