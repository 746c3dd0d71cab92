"""The stages: one module per command that turns inputs into an output (fine-tune, score, prune, store, distil,
evaluate, export) and the pipeline that chains them. Each calls the services one level up in :mod:`mudkd.core`
(data, training, store, outputs, measure ...) and never prints."""
