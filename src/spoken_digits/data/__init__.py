"""Data sources: where labelled clips come from (FSDD, class folders, manifests, Speech Commands),
how they split, and the on-disk cache of what the front end made of them."""
