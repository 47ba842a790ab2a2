"""Local mode: the three functions, a broker and a gateway on one machine (`t2v local`)."""
