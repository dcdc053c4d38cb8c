"""The mixing methods, by name and id: the Python twin of the operator's method table
(dali_msda/csrc/mix/methods.h). Every Python file of the project takes names and ids from here;
tests/test_methods.py checks that the two tables agree, through the plugin's schema text.

Standard library only, so that reference.py (NumPy only) can import it without the plugin.
"""

import collections

Method = collections.namedtuple("Method", "name id needs_maps mixes_boxes")
Method.__doc__ = """One method: `name` (the op's ``method``), `id` (its ``method_id``),
`needs_maps` (its masks come from the partner's label map: segmentation pipelines only),
`mixes_boxes` (it takes detection boxes, spec 13)."""

TABLE = (
    Method("mixup", 0, needs_maps=False, mixes_boxes=True),
    Method("cutmix", 1, needs_maps=False, mixes_boxes=True),
    Method("hmix", 2, needs_maps=False, mixes_boxes=False),
    Method("gmix", 3, needs_maps=False, mixes_boxes=False),
    Method("fmix", 4, needs_maps=False, mixes_boxes=False),
    Method("resizemix", 5, needs_maps=False, mixes_boxes=True),
    Method("classmix", 6, needs_maps=True, mixes_boxes=False),
)

ALL = tuple(m.name for m in TABLE)  # every method, in id order
METHODS = tuple(m.name for m in TABLE if not m.needs_maps)  # those that need no label maps
MAP_METHODS = tuple(m.name for m in TABLE if m.needs_maps)  # those made from label maps (`seg`)
BOX_METHODS = tuple(m.name for m in TABLE if m.mixes_boxes)  # those that mix boxes (spec 13)
METHOD_IDS = {m.name: m.id for m in TABLE}  # name -> ``method_id``
MODES = ("batch", "elem", "pair")
