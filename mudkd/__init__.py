"""mudkd: small, fast BERTs by structured pruning and compressed hidden-state knowledge distillation.

Importing ``mudkd`` is cheap (no torch). The pruned-BERT model class is registered with the transformers Auto
classes by :func:`mudkd.core.modeling_pruned_bert.register`, which every mudkd entry point that loads models
calls; ``import mudkd.models`` does it for library users.
"""

__version__ = "0.1.0"
