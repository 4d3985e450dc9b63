// Who owns the cores: minitrain's own loops and OpenBLAS are given one thread count together, so the
// two pools never oversubscribe the machine.
#pragma once

namespace minitrain {

// Sets the thread count for BLAS and for minitrain's parallel loops (n >= 1).
void set_num_threads(int n);
int num_threads();

}  // namespace minitrain
