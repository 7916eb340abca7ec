from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    FLOAT32: _ClassVar[DataType]
    FLOAT64: _ClassVar[DataType]
    INT32: _ClassVar[DataType]
    INT64: _ClassVar[DataType]
    UINT8: _ClassVar[DataType]
    FLOAT16: _ClassVar[DataType]
    BFLOAT16: _ClassVar[DataType]

class VariableKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VARIABLE_KIND_UNSPECIFIED: _ClassVar[VariableKind]
    CATEGORICAL: _ClassVar[VariableKind]
    BINARY: _ClassVar[VariableKind]
    REAL: _ClassVar[VariableKind]

class GroupKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GROUP_KIND_UNSPECIFIED: _ClassVar[GroupKind]
    INPUT: _ClassVar[GroupKind]
    PRODUCT: _ClassVar[GroupKind]
    SUM: _ClassVar[GroupKind]

class Distribution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISTRIBUTION_UNSPECIFIED: _ClassVar[Distribution]
    CATEGORICAL_DIST: _ClassVar[Distribution]
    BERNOULLI_DIST: _ClassVar[Distribution]
    GAUSSIAN_DIST: _ClassVar[Distribution]

class EdgePattern(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EDGE_PATTERN_UNSPECIFIED: _ClassVar[EdgePattern]
    DENSE: _ClassVar[EdgePattern]
    BLOCK_SPARSE: _ClassVar[EdgePattern]
    SPARSE: _ClassVar[EdgePattern]

class LayerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LAYER_KIND_UNSPECIFIED: _ClassVar[LayerKind]
    INPUT_LAYER: _ClassVar[LayerKind]
    PRODUCT_LAYER: _ClassVar[LayerKind]
    SUM_LAYER: _ClassVar[LayerKind]
DATA_TYPE_UNSPECIFIED: DataType
FLOAT32: DataType
FLOAT64: DataType
INT32: DataType
INT64: DataType
UINT8: DataType
FLOAT16: DataType
BFLOAT16: DataType
VARIABLE_KIND_UNSPECIFIED: VariableKind
CATEGORICAL: VariableKind
BINARY: VariableKind
REAL: VariableKind
GROUP_KIND_UNSPECIFIED: GroupKind
INPUT: GroupKind
PRODUCT: GroupKind
SUM: GroupKind
DISTRIBUTION_UNSPECIFIED: Distribution
CATEGORICAL_DIST: Distribution
BERNOULLI_DIST: Distribution
GAUSSIAN_DIST: Distribution
EDGE_PATTERN_UNSPECIFIED: EdgePattern
DENSE: EdgePattern
BLOCK_SPARSE: EdgePattern
SPARSE: EdgePattern
LAYER_KIND_UNSPECIFIED: LayerKind
INPUT_LAYER: LayerKind
PRODUCT_LAYER: LayerKind
SUM_LAYER: LayerKind

class ExternalData(_message.Message):
    __slots__ = ("location", "offset", "length", "sha256")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    location: str
    offset: int
    length: int
    sha256: str
    def __init__(self, location: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "dims", "raw_data", "external")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DIMS_FIELD_NUMBER: _ClassVar[int]
    RAW_DATA_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: DataType
    dims: _containers.RepeatedScalarFieldContainer[int]
    raw_data: bytes
    external: ExternalData
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[_Union[DataType, str]] = ..., dims: _Optional[_Iterable[int]] = ..., raw_data: _Optional[bytes] = ..., external: _Optional[_Union[ExternalData, _Mapping]] = ...) -> None: ...

class Variable(_message.Message):
    __slots__ = ("name", "kind", "num_cats")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NUM_CATS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: VariableKind
    num_cats: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[VariableKind, str]] = ..., num_cats: _Optional[int] = ...) -> None: ...

class InputGroup(_message.Message):
    __slots__ = ("variable", "dist", "params")
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    DIST_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    variable: int
    dist: Distribution
    params: str
    def __init__(self, variable: _Optional[int] = ..., dist: _Optional[_Union[Distribution, str]] = ..., params: _Optional[str] = ...) -> None: ...

class ProductGroup(_message.Message):
    __slots__ = ("children", "child_index")
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    CHILD_INDEX_FIELD_NUMBER: _ClassVar[int]
    children: _containers.RepeatedScalarFieldContainer[int]
    child_index: str
    def __init__(self, children: _Optional[_Iterable[int]] = ..., child_index: _Optional[str] = ...) -> None: ...

class SumGroup(_message.Message):
    __slots__ = ("children", "pattern", "block_size", "edges", "weights")
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    EDGES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    children: _containers.RepeatedScalarFieldContainer[int]
    pattern: EdgePattern
    block_size: int
    edges: str
    weights: str
    def __init__(self, children: _Optional[_Iterable[int]] = ..., pattern: _Optional[_Union[EdgePattern, str]] = ..., block_size: _Optional[int] = ..., edges: _Optional[str] = ..., weights: _Optional[str] = ...) -> None: ...

class Group(_message.Message):
    __slots__ = ("id", "name", "kind", "num_nodes", "scope", "input", "product", "sum")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NUM_NODES_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    kind: GroupKind
    num_nodes: int
    scope: _containers.RepeatedScalarFieldContainer[int]
    input: InputGroup
    product: ProductGroup
    sum: SumGroup
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[GroupKind, str]] = ..., num_nodes: _Optional[int] = ..., scope: _Optional[_Iterable[int]] = ..., input: _Optional[_Union[InputGroup, _Mapping]] = ..., product: _Optional[_Union[ProductGroup, _Mapping]] = ..., sum: _Optional[_Union[SumGroup, _Mapping]] = ...) -> None: ...

class Tie(_message.Message):
    __slots__ = ("group", "target")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    group: int
    target: int
    def __init__(self, group: _Optional[int] = ..., target: _Optional[int] = ...) -> None: ...

class NodeCircuit(_message.Message):
    __slots__ = ("num_nodes", "kind", "child_offsets", "child_ids", "sum_weights", "input_vars", "input_params", "variable_order", "scope_lo", "scope_hi", "roots")
    NUM_NODES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHILD_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    CHILD_IDS_FIELD_NUMBER: _ClassVar[int]
    SUM_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_VARS_FIELD_NUMBER: _ClassVar[int]
    INPUT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_ORDER_FIELD_NUMBER: _ClassVar[int]
    SCOPE_LO_FIELD_NUMBER: _ClassVar[int]
    SCOPE_HI_FIELD_NUMBER: _ClassVar[int]
    ROOTS_FIELD_NUMBER: _ClassVar[int]
    num_nodes: int
    kind: str
    child_offsets: str
    child_ids: str
    sum_weights: str
    input_vars: str
    input_params: str
    variable_order: str
    scope_lo: str
    scope_hi: str
    roots: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, num_nodes: _Optional[int] = ..., kind: _Optional[str] = ..., child_offsets: _Optional[str] = ..., child_ids: _Optional[str] = ..., sum_weights: _Optional[str] = ..., input_vars: _Optional[str] = ..., input_params: _Optional[str] = ..., variable_order: _Optional[str] = ..., scope_lo: _Optional[str] = ..., scope_hi: _Optional[str] = ..., roots: _Optional[_Iterable[int]] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("ir_version", "producer_name", "producer_version", "metadata", "name", "variables", "groups", "roots", "ties", "tensors", "nodes")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IR_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_NAME_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ROOTS_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    ir_version: int
    producer_name: str
    producer_version: str
    metadata: _containers.ScalarMap[str, str]
    name: str
    variables: _containers.RepeatedCompositeFieldContainer[Variable]
    groups: _containers.RepeatedCompositeFieldContainer[Group]
    roots: _containers.RepeatedScalarFieldContainer[int]
    ties: _containers.RepeatedCompositeFieldContainer[Tie]
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    nodes: NodeCircuit
    def __init__(self, ir_version: _Optional[int] = ..., producer_name: _Optional[str] = ..., producer_version: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., name: _Optional[str] = ..., variables: _Optional[_Iterable[_Union[Variable, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[Group, _Mapping]]] = ..., roots: _Optional[_Iterable[int]] = ..., ties: _Optional[_Iterable[_Union[Tie, _Mapping]]] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., nodes: _Optional[_Union[NodeCircuit, _Mapping]] = ...) -> None: ...

class GroupPlacement(_message.Message):
    __slots__ = ("group", "slot_start", "param_start", "param_count", "block_size")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    SLOT_START_FIELD_NUMBER: _ClassVar[int]
    PARAM_START_FIELD_NUMBER: _ClassVar[int]
    PARAM_COUNT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    group: int
    slot_start: int
    param_start: int
    param_count: int
    block_size: int
    def __init__(self, group: _Optional[int] = ..., slot_start: _Optional[int] = ..., param_start: _Optional[int] = ..., param_count: _Optional[int] = ..., block_size: _Optional[int] = ...) -> None: ...

class InputPartition(_message.Message):
    __slots__ = ("dist", "slot_start", "num_nodes", "node_vars", "node_param_starts", "params_per_node", "has_ties")
    DIST_FIELD_NUMBER: _ClassVar[int]
    SLOT_START_FIELD_NUMBER: _ClassVar[int]
    NUM_NODES_FIELD_NUMBER: _ClassVar[int]
    NODE_VARS_FIELD_NUMBER: _ClassVar[int]
    NODE_PARAM_STARTS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    HAS_TIES_FIELD_NUMBER: _ClassVar[int]
    dist: Distribution
    slot_start: int
    num_nodes: int
    node_vars: str
    node_param_starts: str
    params_per_node: int
    has_ties: bool
    def __init__(self, dist: _Optional[_Union[Distribution, str]] = ..., slot_start: _Optional[int] = ..., num_nodes: _Optional[int] = ..., node_vars: _Optional[str] = ..., node_param_starts: _Optional[str] = ..., params_per_node: _Optional[int] = ..., has_ties: bool = ...) -> None: ...

class ProductPartition(_message.Message):
    __slots__ = ("slot_start", "num_nodes", "num_children", "child_slots")
    SLOT_START_FIELD_NUMBER: _ClassVar[int]
    NUM_NODES_FIELD_NUMBER: _ClassVar[int]
    NUM_CHILDREN_FIELD_NUMBER: _ClassVar[int]
    CHILD_SLOTS_FIELD_NUMBER: _ClassVar[int]
    slot_start: int
    num_nodes: int
    num_children: int
    child_slots: str
    def __init__(self, slot_start: _Optional[int] = ..., num_nodes: _Optional[int] = ..., num_children: _Optional[int] = ..., child_slots: _Optional[str] = ...) -> None: ...

class SumPartition(_message.Message):
    __slots__ = ("block_size", "num_blocks", "max_children", "block_slots", "block_num_children", "child_slots", "block_param_starts", "has_ties", "kernel", "kernel_options")
    class KernelOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHILDREN_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUM_CHILDREN_FIELD_NUMBER: _ClassVar[int]
    CHILD_SLOTS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_PARAM_STARTS_FIELD_NUMBER: _ClassVar[int]
    HAS_TIES_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    KERNEL_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    block_size: int
    num_blocks: int
    max_children: int
    block_slots: str
    block_num_children: str
    child_slots: str
    block_param_starts: str
    has_ties: bool
    kernel: str
    kernel_options: _containers.ScalarMap[str, str]
    def __init__(self, block_size: _Optional[int] = ..., num_blocks: _Optional[int] = ..., max_children: _Optional[int] = ..., block_slots: _Optional[str] = ..., block_num_children: _Optional[str] = ..., child_slots: _Optional[str] = ..., block_param_starts: _Optional[str] = ..., has_ties: bool = ..., kernel: _Optional[str] = ..., kernel_options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SumBackwardPartition(_message.Message):
    __slots__ = ("child_block_size", "parent_block_size", "num_blocks", "max_parents", "cblock_slots", "cblock_num_parents", "parent_slots", "parent_param_starts", "kernel", "kernel_options")
    class KernelOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHILD_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    PARENT_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    MAX_PARENTS_FIELD_NUMBER: _ClassVar[int]
    CBLOCK_SLOTS_FIELD_NUMBER: _ClassVar[int]
    CBLOCK_NUM_PARENTS_FIELD_NUMBER: _ClassVar[int]
    PARENT_SLOTS_FIELD_NUMBER: _ClassVar[int]
    PARENT_PARAM_STARTS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    KERNEL_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    child_block_size: int
    parent_block_size: int
    num_blocks: int
    max_parents: int
    cblock_slots: str
    cblock_num_parents: str
    parent_slots: str
    parent_param_starts: str
    kernel: str
    kernel_options: _containers.ScalarMap[str, str]
    def __init__(self, child_block_size: _Optional[int] = ..., parent_block_size: _Optional[int] = ..., num_blocks: _Optional[int] = ..., max_parents: _Optional[int] = ..., cblock_slots: _Optional[str] = ..., cblock_num_parents: _Optional[str] = ..., parent_slots: _Optional[str] = ..., parent_param_starts: _Optional[str] = ..., kernel: _Optional[str] = ..., kernel_options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Layer(_message.Message):
    __slots__ = ("kind", "level", "slot_start", "num_slots", "groups", "input_partitions", "product_partitions", "sum_partitions", "sum_backward_partitions")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    SLOT_START_FIELD_NUMBER: _ClassVar[int]
    NUM_SLOTS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    INPUT_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    SUM_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    SUM_BACKWARD_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    kind: LayerKind
    level: int
    slot_start: int
    num_slots: int
    groups: _containers.RepeatedScalarFieldContainer[int]
    input_partitions: _containers.RepeatedCompositeFieldContainer[InputPartition]
    product_partitions: _containers.RepeatedCompositeFieldContainer[ProductPartition]
    sum_partitions: _containers.RepeatedCompositeFieldContainer[SumPartition]
    sum_backward_partitions: _containers.RepeatedCompositeFieldContainer[SumBackwardPartition]
    def __init__(self, kind: _Optional[_Union[LayerKind, str]] = ..., level: _Optional[int] = ..., slot_start: _Optional[int] = ..., num_slots: _Optional[int] = ..., groups: _Optional[_Iterable[int]] = ..., input_partitions: _Optional[_Iterable[_Union[InputPartition, _Mapping]]] = ..., product_partitions: _Optional[_Iterable[_Union[ProductPartition, _Mapping]]] = ..., sum_partitions: _Optional[_Iterable[_Union[SumPartition, _Mapping]]] = ..., sum_backward_partitions: _Optional[_Iterable[_Union[SumBackwardPartition, _Mapping]]] = ...) -> None: ...

class NodePlacement(_message.Message):
    __slots__ = ("node_slots", "sum_param_start", "sum_param_count", "input_param_start", "input_param_count")
    NODE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    SUM_PARAM_START_FIELD_NUMBER: _ClassVar[int]
    SUM_PARAM_COUNT_FIELD_NUMBER: _ClassVar[int]
    INPUT_PARAM_START_FIELD_NUMBER: _ClassVar[int]
    INPUT_PARAM_COUNT_FIELD_NUMBER: _ClassVar[int]
    node_slots: str
    sum_param_start: int
    sum_param_count: int
    input_param_start: int
    input_param_count: int
    def __init__(self, node_slots: _Optional[str] = ..., sum_param_start: _Optional[int] = ..., sum_param_count: _Optional[int] = ..., input_param_start: _Optional[int] = ..., input_param_count: _Optional[int] = ...) -> None: ...

class Layout(_message.Message):
    __slots__ = ("ir_version", "model_hash", "pipeline", "compiler_version", "num_slots", "num_sum_params", "num_input_params", "max_block_size", "num_vars", "placements", "layers", "root_group", "root_slot", "tensors", "metadata", "node_placement")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IR_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    COMPILER_VERSION_FIELD_NUMBER: _ClassVar[int]
    NUM_SLOTS_FIELD_NUMBER: _ClassVar[int]
    NUM_SUM_PARAMS_FIELD_NUMBER: _ClassVar[int]
    NUM_INPUT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_VARS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    ROOT_GROUP_FIELD_NUMBER: _ClassVar[int]
    ROOT_SLOT_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NODE_PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    ir_version: int
    model_hash: str
    pipeline: str
    compiler_version: str
    num_slots: int
    num_sum_params: int
    num_input_params: int
    max_block_size: int
    num_vars: int
    placements: _containers.RepeatedCompositeFieldContainer[GroupPlacement]
    layers: _containers.RepeatedCompositeFieldContainer[Layer]
    root_group: int
    root_slot: int
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    metadata: _containers.ScalarMap[str, str]
    node_placement: NodePlacement
    def __init__(self, ir_version: _Optional[int] = ..., model_hash: _Optional[str] = ..., pipeline: _Optional[str] = ..., compiler_version: _Optional[str] = ..., num_slots: _Optional[int] = ..., num_sum_params: _Optional[int] = ..., num_input_params: _Optional[int] = ..., max_block_size: _Optional[int] = ..., num_vars: _Optional[int] = ..., placements: _Optional[_Iterable[_Union[GroupPlacement, _Mapping]]] = ..., layers: _Optional[_Iterable[_Union[Layer, _Mapping]]] = ..., root_group: _Optional[int] = ..., root_slot: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., node_placement: _Optional[_Union[NodePlacement, _Mapping]] = ...) -> None: ...
