"""Typed schemas of every config group, registered in Hydra's ConfigStore.

Each YAML file in ``conf/<group>/`` starts with ``defaults: [<group>_schema, _self_]``, so Hydra
merges it into the dataclass below and rejects unknown keys and wrong types at compose time.
Checks that need more than one field (a cross naming a missing feature, the last tower width)
live in ``compiler.core.validate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING

# ruff: noqa: UP007, UP045
# Optional[...] rather than "X | None": OmegaConf inspects these annotations at runtime, and
# keeps working on Python 3.10 only with typing's spelling.


class FeatureDtype(str, Enum):
    """Raw dtype of a column, as the data loader produces it and serving examples carry it."""

    string = "string"
    int = "int"
    float = "float"
    timestamp = "timestamp"  # int64 Unix seconds


class Cycle(str, Enum):
    weekly = "weekly"
    monthly = "monthly"
    yearly = "yearly"


class ConfigType(str, Enum):
    """What a feature config is for; ``compiler.core.validate`` enforces it.

    ``ranking``: it has a target, and serves ranking, multitask and retrieval models alike.
    ``retrieval``: it has no target, and serves retrieval models only.
    """

    retrieval = "retrieval"
    ranking = "ranking"


class Projection(str, Enum):
    """What a tower with ``layers: []`` does with its concatenated feature encodings."""

    #: Nothing: the encodings are the embedding, so their width must be output_embedding_dim.
    none = "none"
    #: One linear Dense layer (no activation) to output_embedding_dim.
    linear = "linear"


@dataclass
class EmbeddingSpec:
    dim: int = MISSING
    oov_buckets: int = 1


@dataclass
class BucketizeSpec:
    buckets: int = 100
    embedding_dim: int = 8


@dataclass
class FeatureSpec:
    name: str = MISSING
    dtype: FeatureDtype = FeatureDtype.string
    embedding: Optional[EmbeddingSpec] = None
    cyclical: list[Cycle] = field(default_factory=list)
    bucketize: Optional[BucketizeSpec] = None
    normalize: bool = False


@dataclass
class CrossSpec:
    features: list[str] = MISSING
    hash_buckets: int = 1000
    embedding_dim: int = 16


@dataclass
class CrossGroups:
    buyer: list[CrossSpec] = field(default_factory=list)
    product: list[CrossSpec] = field(default_factory=list)


@dataclass
class ClipSpec:
    lower_percentile: float = 1.0
    upper_percentile: float = 99.0


@dataclass
class TargetSpec:
    column: str = MISSING
    clip: Optional[ClipSpec] = None
    #: Apply log1p after clipping (serving inverts it with expm1). Off unless set: the
    #: regression metrics are computed on the transformed target.
    log: bool = False


@dataclass
class FeaturesConfig:
    name: str = MISSING
    display_name: str = ""
    config_type: ConfigType = ConfigType.ranking
    target: Optional[TargetSpec] = None
    buyer: list[FeatureSpec] = field(default_factory=list)
    product: list[FeatureSpec] = field(default_factory=list)
    crosses: CrossGroups = field(default_factory=CrossGroups)
    #: The product feature whose vocabulary identifies a candidate (retrieval ids).
    product_id: str = "product_id"
    #: The buyer feature whose vocabulary identifies a buyer: the key of purchase history,
    #: the buy-again baselines and the new-products protocol (which need it to have an
    #: embedding; see ``compiler.model.buyer_id_column``).
    buyer_id: str = "customer_id"


@dataclass
class TowerConfig:
    #: Registered name of a ``tower`` fragment.
    type: str = "mlp"
    #: Dense layer widths after the feature encoder; the last is output_embedding_dim.
    #: ``[]``: no dense layer (see ``projection``).
    layers: list[int] = field(default_factory=list)
    #: Only with ``layers: []``: ``none`` (the default) emits no dense layer at all, so the
    #: concatenated encodings must be output_embedding_dim wide; ``linear`` projects them.
    projection: Projection = Projection.none
    activation: str = "relu"
    l2: float = 0.0
    dropout: float = 0.0
    #: Fragment-specific parameters, validated against the fragment's own schema.
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class HeadConfig:
    #: Registered name of a ``head`` fragment.
    type: str = "mlp"
    layers: list[int] = field(default_factory=lambda: [64, 32, 1])
    activation: str = "relu"
    l2: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EarlyStoppingConfig:
    """Stop training when a validation metric stops improving (Keras ``EarlyStopping``
    semantics: ``patience``, ``min_delta``, ``restore_best_weights``)."""

    #: A val_* metric the run writes: val_recall_at_K (K in model.top_k), val_ndcg_at_K with
    #: the ndcg evaluator, val_mrr with the mrr evaluator, val_rmse, val_mae. Errors are
    #: minimised, the others maximised.
    metric: str = "val_recall_at_100"
    #: Epochs without an improvement of more than min_delta before training stops.
    patience: int = 3
    min_delta: float = 0.0
    #: Put back the best epoch's weights when training ends (stopped early or not).
    restore_best_weights: bool = True


@dataclass
class LRScheduleConfig:
    """A learning-rate schedule over the whole run (``model.learning_rate`` is its peak)."""

    #: ``warmup_cosine``: linear warm-up from 0, then cosine decay (Goyal et al. 2017;
    #: Loshchilov & Hutter 2017).
    kind: str = "warmup_cosine"
    #: Length of the warm-up, in epochs (fractions allowed; 0: none).
    warmup_epochs: float = 1.0
    #: The rate at the last step, as a fraction of model.learning_rate.
    final_learning_rate_ratio: float = 0.0


@dataclass
class PerformanceConfig:
    """How the emitted trainer runs, not what it computes: every switch keeps the metrics
    within the tolerance that ``benchmarks/training_speed.py`` states and
    ``tests/test_performance_switches.py`` checks. Measurements: ``benchmarks/RESULTS.md``."""

    #: Keep the parsed, batched splits in memory after their first pass (where the data fits).
    cache: bool = True
    #: Batches per call of Keras' compiled step in fit/evaluate; 1 = one call per batch.
    #: More than 1 needs the number of batches, which only a cached dataset knows for free.
    steps_per_execution: int = 32
    #: Compile the train and evaluation steps with XLA. On CPU at hybrid_v1's size the
    #: compile (per batch shape) costs more than the faster steps save, so it is off.
    jit_compile: bool = False


class LossReduction(str, Enum):
    """How the in-batch softmax losses of a batch are combined (``model.retrieval``)."""

    #: Summed over the batch (the TFRS Retrieval default): the loss grows with batch_size, so
    #: a multitask ranking_weight of 1 weighs one rating error against a whole batch's
    #: retrieval loss; scale the weights accordingly.
    sum = "sum"
    #: Averaged over the batch: retrieval and ranking losses are both per-example means, so
    #: weights 1/1 weigh them equally whatever the batch size.
    mean = "mean"


@dataclass
class RetrievalTrainingConfig:
    """How the retrieval task's in-batch softmax is computed. The defaults are the TFRS
    Retrieval task's own (what recforge always emitted)."""

    #: Logits are divided by it (``tfrs.tasks.Retrieval(temperature=...)``); below 1 sharpens.
    temperature: float = 1.0
    #: Subtract log p(product) from each candidate's logit, p its train-split frequency: the
    #: sampling-bias correction of in-batch negatives (Yi et al., RecSys 2019; TFRS
    #: ``candidate_sampling_probability``).
    logq_correction: bool = False
    #: A candidate that is the positive's own product elsewhere in the batch is no negative:
    #: its logit becomes -inf (``tfrs.tasks.Retrieval(remove_accidental_hits=True)``).
    remove_accidental_hits: bool = False
    #: L2-normalise both towers' outputs, so scores are cosine similarities (use with a
    #: temperature below 1, e.g. 0.05-0.2).
    normalize_embeddings: bool = False
    loss_reduction: LossReduction = LossReduction.sum
    #: Give each buyer's positive (the product on its own line) to the softmax as its column
    #: index (``tf.nn.sparse_softmax_cross_entropy_with_logits``) instead of the identity
    #: matrix of labels ``tfrs.tasks.Retrieval`` fills every step: the same loss, faster
    #: (benchmarks/RESULTS.md, "Training throughput"). Applies where the TFRS task would
    #: (none of the knobs above on, no purchase history, no model.distribution).
    sparse_labels: bool = True


@dataclass
class PurchaseHistoryConfig:
    """The buyer's own purchases, counted by the Transform over the train split only, scored
    beside the two towers: a repeat-aware score learned from data (``plugins/history.py``)."""

    #: The timestamp feature (a buyer feature of the feature config) recency counts from.
    date: str = "date"
    #: A purchase's weight in the recency-weighted count halves every this many days before
    #: the last train day.
    recency_half_life_days: float = 30.0
    #: Hidden layer widths of the small MLP that turns a (buyer, product) pair's history into
    #: a score (a last Dense(1) is added).
    scorer_layers: list[int] = field(default_factory=lambda: [16])
    #: Add the mean of learned product vectors over the buyer's train purchases to the buyer
    #: tower's output (item-to-item similarity, FISM): what goes with what they bought.
    bought_products_in_query: bool = True


class EvalProtocol(str, Enum):
    """Which test interactions the retrieval metrics (and the run's baselines) count."""

    #: Every test line is a query whose target is its product (TFRS FactorizedTopK's protocol).
    all = "all"
    #: Discovery: test lines whose product the buyer bought in train are dropped, and the
    #: buyer's train products are removed from their candidates.
    new_products = "new_products"


class Distribution(str, Enum):
    """How training is spread over devices and machines (``tf.distribute`` strategies)."""

    #: One device, no strategy: what recforge always emitted.
    none = "none"
    #: ``tf.distribute.MirroredStrategy``: every device of this machine, one process.
    mirrored = "mirrored"
    #: ``tf.distribute.MultiWorkerMirroredStrategy``: one process per machine, the cluster
    #: from ``TF_CONFIG`` (what Vertex AI sets for multi-replica jobs; ``run.workers`` locally).
    multi_worker = "multi_worker"


@dataclass
class ModelConfig:
    name: str = MISSING
    display_name: str = ""
    #: Registered name of a ``task`` fragment: retrieval, ranking or multitask.
    model_type: str = "multitask"
    buyer_tower: TowerConfig = field(default_factory=TowerConfig)
    product_tower: TowerConfig = field(default_factory=TowerConfig)
    rating_head: HeadConfig = field(default_factory=HeadConfig)
    output_embedding_dim: int = 32
    retrieval_weight: float = 1.0
    ranking_weight: float = 1.0
    #: Registered name of a ``retrieval_index`` fragment.
    retrieval_algorithm: str = "brute_force"
    #: Parameters of that fragment (e.g. ScaNN's num_leaves), validated against its ``Params``.
    retrieval_index_params: dict[str, Any] = field(default_factory=dict)
    #: Registered name of a ``loss`` fragment (the ranking loss).
    loss: str = "mse"
    #: Registered name of a ``retrieval_loss`` fragment.
    retrieval_loss: str = "softmax"
    #: Registered name of an ``optimizer`` fragment.
    optimizer: str = "adam"
    learning_rate: float = 0.001
    batch_size: int = 1024
    epochs: int = 3
    #: Shuffle the training examples anew every epoch (seeded), so each epoch sees different
    #: batches and in-batch negatives; false: one shuffle, the same batches every epoch.
    reshuffle_each_epoch: bool = False
    #: null: stop after ``epochs``. Set: stop when the validation metric stops improving
    #: (adds the ``early_stopping`` callback; needs an eval split).
    early_stopping: Optional[EarlyStoppingConfig] = None
    #: null: a constant ``learning_rate``. Set: warm-up then cosine decay.
    lr_schedule: Optional[LRScheduleConfig] = None
    top_k: list[int] = field(default_factory=lambda: [5, 10, 50, 100])
    #: ``all`` or ``new_products`` (see ``EvalProtocol``).
    eval_protocol: EvalProtocol = EvalProtocol.all
    #: MiB that ranking a batch's lines against one block of candidates may take (the ranking
    #: evaluators): candidates are scored in blocks that fit it, never all at once.
    evaluation_memory_mb: int = 256
    #: Registered names of ``evaluator`` fragments, run in this order after training; each
    #: adds metrics to training_metrics.json. null: the model type's own (``recall_at_k`` with
    #: retrieval, ``regression`` with ranking; multitask: both).
    evaluators: Optional[list[str]] = None
    #: Registered names of ``callback`` fragments: the Keras callbacks of fit, in this order.
    callbacks: list[str] = field(default_factory=lambda: ["tensorboard"])
    #: Registered names of ``export`` fragments, run in this order at the end of run_fn.
    exports: list[str] = field(default_factory=lambda: ["serving"])
    #: Registered name of the ``input`` fragment.
    input: str = "tfrecord"
    seed: int = 42
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    #: The retrieval loss's knobs (temperature, logQ, accidental hits, cosine, reduction).
    retrieval: RetrievalTrainingConfig = field(default_factory=RetrievalTrainingConfig)
    #: null: no purchase history. Set: the Transform counts each buyer's train purchases and
    #: the model adds a learned history score to every candidate's score.
    purchase_history: Optional[PurchaseHistoryConfig] = None
    #: ``none``, ``mirrored`` or ``multi_worker`` (see ``Distribution``): the trainer builds
    #: the model under that strategy; batch_size stays the global batch.
    distribution: Distribution = Distribution.none


@dataclass
class BeamConfig:
    """``run.beam``: the Beam runner the Transform runs on (``compiler.runner.beam_options``)."""

    #: ``DirectRunner`` (this machine) or ``DataflowRunner``.
    runner: str = "DirectRunner"
    #: Beam pipeline flags passed straight to ``PipelineOptions``, e.g.
    #: ``["--direct_running_mode=multi_processing", "--direct_num_workers=2"]``.
    options: list[str] = field(default_factory=list)


@dataclass
class LocalRunConfig:
    """``run=local``: run the compiled modules on this machine (see ``compiler.local.run``)."""

    target: str = "local"
    #: Run directories go under this root.
    runs_root: str = "runs"
    #: A fixed run directory name (default: timestamp, model, features, config hash).
    name: Optional[str] = None
    #: A finished run directory or Transform output (local or gs://): skip the Transform.
    transform_from: Optional[str] = None
    #: Reuse Transform outputs keyed by the content hash of the data and the Transform module.
    transform_cache: bool = True
    cache_dir: Optional[str] = None
    #: Override the model config's epochs / batch size for this run only.
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    #: Compute the baselines (``compiler.local.baselines``) beside the model's metrics.
    baselines: bool = True
    #: Training processes: N > 1 runs N local workers of one multi-worker cluster (needs
    #: ``model.distribution=multi_worker``; see ``compiler.local.workers``).
    workers: int = 1
    #: The Transform's Beam runner and pipeline options.
    beam: BeamConfig = field(default_factory=BeamConfig)
    #: Show TensorFlow, absl, Beam and Keras output on the console instead of only in
    #: ``<run_dir>/run.log`` (also ``python -m compiler --verbose``).
    verbose: bool = False


@dataclass
class RecforgeConfig:
    """The root config: ``conf/config.yaml`` composes the groups into this."""

    features: FeaturesConfig = MISSING
    model: ModelConfig = MISSING
    #: Where the emitted modules go; ``${model.name}__${features.name}`` under ``generated/``.
    output_dir: str = MISSING
    #: Where each point of a ``-m`` sweep is emitted (one directory per content hash).
    sweep_dir: str = "generated/sweeps"
    #: Show what would happen; write, run and submit nothing.
    dry_run: bool = False
    #: SQLAlchemy URL of the experiment ledger (default: $RECFORGE_LEDGER_URL, else
    #: .recforge/ledger.db in the working directory).
    ledger: Optional[str] = None
    #: The final metric a sweep point returns (what Optuna optimizes).
    objective: str = "recall_at_100"
    data: Any = None
    run: Any = None
    submit: Any = None
