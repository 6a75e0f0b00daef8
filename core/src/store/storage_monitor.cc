#include "store/storage_monitor.h"

namespace hearth {

StorageMonitor::StorageMonitor(Database& db, HubLoop& loop, const Clock& clock, Logger& logger,
                               std::function<void()> changed)
    : db_(db), loop_(loop), clock_(clock), logger_(logger), changed_(std::move(changed)) {
  db_.setStorageListener([this](bool full, const std::string& detail) { onChange(full, detail); });
}

StorageMonitor::~StorageMonitor() {
  db_.setStorageListener(nullptr);
  if (timer_ != 0) loop_.cancelTimer(timer_);
}

void StorageMonitor::onChange(bool full, const std::string& detail) {
  if (full == full_) return;
  full_ = full;
  if (full) {
    sinceMs_ = clock_.nowMs();
    detail_ = detail;
    ++episodes_;
    logger_.error("storage full: " + detail +
                  ". Changes are refused with STORAGE_FULL until there is space; reads, device "
                  "control and everything already stored keep working. Free space in the state "
                  "directory (docs/operations.md, \"When the disk is full\").");
    if (timer_ == 0) timer_ = loop_.startTimer(kRecheck, [this] { recheck(); });
  } else {
    logger_.info("storage writable again (" + detail + "); changes are accepted, after " +
                 std::to_string((clock_.nowMs() - sinceMs_) / 1000) + " s full");
    detail_.clear();
  }
  if (changed_) changed_();
}

void StorageMonitor::recheck() {
  timer_ = 0;
  if (!full_) return;
  db_.checkSpace();  // reports through the listener when there is room
  if (full_) timer_ = loop_.startTimer(kRecheck, [this] { recheck(); });
}

void StorageMonitor::fillStatus(Poco::JSON::Object& status) const {
  Poco::JSON::Object::Ptr s = new Poco::JSON::Object;
  s->set("state", full_ ? "full" : "ok");
  if (full_) {
    s->set("since", sinceMs_);
    s->set("detail", detail_);
  }
  s->set("fullEpisodes", episodes_);
  status.set("storage", s);
}

}  // namespace hearth
