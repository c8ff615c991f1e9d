"""What differs between the stages: one module per modality, each registering a `Modality`
(registry.py) whose stages build the Tasks the one loop (train.py) runs.

base.py is the contract every modality fulfils (Task, TrainData, Evaluation, the row helpers,
the MAE and optimizer factories, the encoder export); images.py, segmentation.py, volumes.py,
series.py and tables.py are the shipped modalities. Importing this package imports none of them.
"""
