"""The supervised baselines of the lecture the package grew from, on the same network modules as
the agents: ``perceptron`` (perceptron and delta rules), ``backprop`` (the XOR MLP by hand),
``classifier`` (MLP/CNN classifiers, LeNet, dropout, softmax loss), ``cloning`` (behaviour
cloning from recorded trajectories), and their data: ``datasets``, ``atari_frames``,
``trajectories`` and ``augment``."""
