"""Points bought with a premium (プレミアム付ポイント): a town's offer, card purchases and their
issue on chain (issue 14 §5, docs/adr/0018-premium-points.md)."""
