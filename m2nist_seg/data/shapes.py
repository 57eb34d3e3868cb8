"""M2NIST's shapes and classes: 64×84 images, 11 classes (digits 0–9, then background)."""

HEIGHT, WIDTH = 64, 84
IMAGE_SHAPE = (HEIGHT, WIDTH)
NUM_CLASSES = 11
NUM_DIGITS = 10
BACKGROUND = 10
CLASS_NAMES = tuple(str(d) for d in range(NUM_DIGITS)) + ("background",)
