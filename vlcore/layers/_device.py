"""Where the CPU fast paths of this package apply."""
import paddle


def eager_cpu(x):
    """``x`` is a dygraph tensor on CPU. In static graphs (``jit.save``) the
    place is unknown and the plain Paddle operators are used."""
    return paddle.in_dynamic_mode() and x.place.is_cpu_place()
