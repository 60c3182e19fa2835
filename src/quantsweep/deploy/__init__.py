"""What a decision hands back: the file to ship, laid out as its ecosystem loads it."""
