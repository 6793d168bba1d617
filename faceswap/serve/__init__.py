"""`faceswap serve`: the verification page for people who receive a file and ask where it came from,
and the consent page for the people whose consent made it (app.py lists the routes)."""
