"""Ready DALI pipelines around fn.msda.mix (installed as ``dali_msda.pipelines``).

    from dali_msda.pipelines import imagenet_train, imagenet_val, MixConfig, MixSchedule
    from dali_msda.pipelines import embedded_dataset
    from dali_msda.pipelines import segmentation_train, segmentation_val, segmentation_dataset
"""

from .config import METHOD_IDS, MixConfig, MixSchedule
from .data import SEG_CLASSES, embedded_dataset, segmentation_dataset, write_webdataset
from .common import IMAGENET_MEAN, IMAGENET_STD, dist_env, folder_classes
from .imagenet import imagenet_train, imagenet_val
from .segmentation import segmentation_pairs, segmentation_train, segmentation_val

__all__ = ["METHOD_IDS", "MixConfig", "MixSchedule", "embedded_dataset", "write_webdataset",
           "IMAGENET_MEAN", "IMAGENET_STD", "dist_env", "folder_classes", "imagenet_train",
           "imagenet_val", "SEG_CLASSES", "segmentation_dataset", "segmentation_pairs",
           "segmentation_train", "segmentation_val"]
