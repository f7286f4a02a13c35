"""What a reply is worth: the house format, cut and looping replies, base and tuned side by side.
"""
