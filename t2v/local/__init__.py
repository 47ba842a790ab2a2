"""Local mode: the four functions, a broker and a gateway on one machine (`t2v local`)."""
