"""Partner towns (共同利用): partnerships agreed by both towns' staff, and clearing between them."""
