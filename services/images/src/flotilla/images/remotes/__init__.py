"""The registry side of pulls and pushes."""
