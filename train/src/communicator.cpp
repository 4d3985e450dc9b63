// The checks every communicator's broadcast shares, and the single-process communicator.
#include <minitrain/train/communicator.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace minitrain::train {

void Communicator::broadcast(const std::vector<Tensor>& tensors, int root) const {
  if (root < 0 || root >= size())
    throw std::invalid_argument("Communicator::broadcast: root " + std::to_string(root) + " is not a rank of " +
                                std::to_string(size()));
  for (const Tensor& t : tensors)
    if (!t.defined() || !t.is_contiguous())
      throw std::invalid_argument("Communicator::broadcast: tensors must be defined and contiguous");
  broadcast_checked(tensors, root);
}

void SingleProcessCommunicator::abort(int code) const { std::exit(code); }

void SingleProcessCommunicator::wait(int ticket) const {
  if (ticket < 0) return;
  throw std::logic_error("Communicator::wait: ticket " + std::to_string(ticket) +
                         " on a single process, which hands out none");
}

}  // namespace minitrain::train
