"""The method table twice, in C++ (dali_msda/csrc/mix/methods.h) and Python (dali_msda.methods):
the two must agree, read through what the plugin says about itself (its schema's help text and
its refusals), so that a method added to one and not the other fails here."""

import re

import numpy as np
import pytest

from dali_msda import methods
from nvidia.dali import backend, fn, pipeline_def

SCHEMA = backend.GetSchema("msda__Mix")


def test_method_ids_agree_with_the_schema():
    doc = SCHEMA.GetArgumentDox("method_id")
    listed = re.search(r"input: (.*?); overrides", doc, re.S).group(1)
    pairs = re.findall(r"(\d+) (\w+)", listed)
    assert [(int(i), name) for i, name in pairs] == [(m.id, m.name) for m in methods.TABLE]


def test_method_names_and_map_methods_agree_with_the_schema():
    doc = SCHEMA.GetArgumentDox("method")
    named = re.findall(r'``"(\w+)"``( \(needs ``seg``\))?', doc)
    assert [name for name, _ in named] == list(methods.ALL)
    assert tuple(name for name, seg in named if seg) == methods.MAP_METHODS


def run_error(**kwargs):
    """The message the op fails with for a batch of two 8 x 8 images and `kwargs`."""
    images = [np.zeros((8, 8, 3), np.uint8)] * 2
    labels = [np.array([0], np.int32)] * 2

    @pipeline_def(batch_size=2, num_threads=1, device_id=None, seed=1)
    def pipe():
        x = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        y = fn.external_source(source=lambda: labels, batch=True)
        extra = {}
        if "boxes" in kwargs:
            boxes = kwargs.pop("boxes")
            extra["boxes"] = fn.external_source(source=lambda: boxes, batch=True)
            box_labels = [np.zeros((len(b),), np.int32) for b in boxes]
            extra["box_labels"] = fn.external_source(source=lambda: box_labels, batch=True)
        return tuple(fn.msda.mix(x, y, num_classes=2, **kwargs, **extra))

    p = pipe()
    with pytest.raises(RuntimeError) as e:
        p.build()
        p.run()
    return str(e.value)


def test_unknown_method_lists_every_method():
    msg = run_error(method="nomix")
    assert re.findall(r'"(\w+)"', msg.split("must be one of")[1].split(";")[0]) == \
        list(methods.ALL)


@pytest.mark.parametrize("method", [m for m in methods.METHODS if m not in methods.BOX_METHODS])
def test_box_methods_agree_with_the_op(method):
    """A method without boxes is refused with the op's list of those with them (the whole
    table's, so a map method's flag is checked too)."""
    boxes = [np.array([[0.1, 0.1, 0.5, 0.5]], np.float32)] * 2
    msg = run_error(method=method, boxes=boxes)
    listed = re.search(r"`boxes` are mixed by (.*?) only", msg).group(1)
    assert tuple(re.findall(r'"(\w+)"', listed)) == methods.BOX_METHODS


@pytest.mark.parametrize("method", methods.MAP_METHODS)
def test_map_methods_are_refused_without_maps(method):
    assert f'`method` "{method}" makes its masks from label maps' in run_error(method=method)


def test_python_files_take_names_from_the_table():
    import dali_msda
    from dali_msda import analysis, reference
    from dali_msda.pipelines import config

    assert dali_msda.METHODS == methods.METHODS and dali_msda.MAP_METHODS == methods.MAP_METHODS
    assert reference.METHODS == methods.METHODS and reference.BOX_METHODS == methods.BOX_METHODS
    assert tuple(analysis.METHODS) == methods.ALL
    assert config.METHOD_IDS == methods.METHOD_IDS
