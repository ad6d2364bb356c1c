#include "meta/record_cache.h"

#include <algorithm>
#include <cassert>

namespace raidfs::meta {

namespace {

// Bookkeeping a key costs beyond its bytes (map node, list node, strings): an estimate that keeps
// the byte budget honest for many small records.
constexpr size_t kOverheadBytes = 96;

size_t entry_bytes(std::string_view key, std::string_view value) {
  return key.size() + value.size() + kOverheadBytes;
}

// Whether `prefix` padded with zero bytes to `length` bytes is ≥ `end` (without making it: a
// 16-byte string is past std::string's inline buffer, and reads call this).
bool padded_at_least(std::string_view prefix, size_t length, std::string_view end) {
  for (size_t i = 0; i < std::min(length, end.size()); ++i) {
    const auto a = static_cast<uint8_t>(i < prefix.size() ? prefix[i] : 0);
    const auto b = static_cast<uint8_t>(end[i]);
    if (a != b) return a > b;
  }
  return length >= end.size();
}

}  // namespace

std::string RecordCache::cache_key(Family f, std::string_view key_or_prefix) {
  std::string k;
  k.reserve(1 + key_or_prefix.size());
  k.push_back(static_cast<char>(f));
  k.append(key_or_prefix);
  return k;
}

std::string RecordCache::group_end(std::string_view prefix) {
  std::string end(prefix.substr(0, kGroupPrefixBytes));
  // Increment as a big-endian number; a carry out of the first byte means there is no end.
  for (size_t i = end.size(); i-- > 0;) {
    if (static_cast<uint8_t>(end[i]) != 0xff) {
      end[i] = static_cast<char>(static_cast<uint8_t>(end[i]) + 1);
      return end;
    }
    end[i] = 0;
  }
  return std::string();
}

RecordCache::Node* RecordCache::lookup_locked(const std::string& ckey) {
  auto it = nodes_.find(ckey);
  if (it == nodes_.end()) return nullptr;
  it->second.referenced = true;
  return &it->second;
}

void RecordCache::insert_locked(std::string ckey, Node node) {
  if (auto old = nodes_.find(ckey); old != nodes_.end()) erase_locked(old);
  order_.push_front(ckey);
  node.place = order_.begin();
  bytes_ += node.bytes;
  nodes_.emplace(std::move(ckey), std::move(node));
  evict_locked();
}

void RecordCache::erase_locked(std::unordered_map<std::string, Node>::iterator it) {
  bytes_ -= it->second.bytes;
  order_.erase(it->second.place);
  nodes_.erase(it);
}

void RecordCache::resize_locked(Node& node, size_t new_bytes) {
  bytes_ = bytes_ - node.bytes + new_bytes;
  node.bytes = new_bytes;
}

void RecordCache::evict_locked() {
  while (bytes_ > capacity_ && !order_.empty()) {
    auto oldest = nodes_.find(order_.back());
    if (oldest->second.referenced) {  // used since it was last here: once more round
      oldest->second.referenced = false;
      order_.splice(order_.begin(), order_, oldest->second.place);
    } else {
      erase_locked(oldest);
    }
  }
}

void RecordCache::forget_family_locked(Family f) {
  for (uint64_t& g : generation_) ++g;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (!it->first.empty() && it->first[0] == static_cast<char>(f)) {
      auto gone = it++;
      erase_locked(gone);
    } else {
      ++it;
    }
  }
}

RecordCache::Lookup RecordCache::find(Family f, std::string_view key, std::string* value,
                                      uint64_t* generation) {
  std::lock_guard lock(mu_);
  record_families_ |= family_bit(f);  // before the generation a fill() will be checked against
  if (const Node* n = lookup_locked(cache_key(f, key)); n != nullptr && !n->is_group) {
    ++hits_;
    *value = n->value;
    return Lookup::kHit;
  }
  ++misses_;
  *generation = generation_locked(cache_key(f, key));
  return Lookup::kMiss;
}

void RecordCache::fill(Family f, std::string_view key, std::string_view value,
                       uint64_t generation) {
  if (value.size() > kRecordMaxBytes) return;
  std::string ckey = cache_key(f, key);
  std::lock_guard lock(mu_);
  if (generation_locked(ckey) != generation) return;  // a write came in between
  Node node;
  node.value.assign(value);
  node.bytes = entry_bytes(key, value) + 1;
  insert_locked(std::move(ckey), std::move(node));
}

RecordCache::Lookup RecordCache::find_group_locked(const std::string& ckey, const Node** group) {
  const Node* n = lookup_locked(ckey);
  if (n != nullptr && n->is_group) {
    if (n->too_large) return Lookup::kUncached;
    ++hits_;
    *group = n;
    return Lookup::kHit;
  }
  ++misses_;
  if (recent_misses_.contains(ckey)) return Lookup::kMiss;
  recent_misses_.insert(ckey);
  recent_order_.push_back(ckey);
  if (recent_order_.size() > kRecentMisses) {
    recent_misses_.erase(recent_order_.front());
    recent_order_.pop_front();
  }
  return Lookup::kUncached;
}

const RecordCache::Node* RecordCache::cached_group_locked(const std::string& ckey) {
  const Node* n = lookup_locked(ckey);
  return n != nullptr && n->is_group && !n->too_large ? n : nullptr;
}

RecordCache::Lookup RecordCache::floor(Family f, std::string_view key, std::string_view lower,
                                       std::optional<Entry>* out) {
  Entry entry;
  const Lookup found = floor(f, key, lower, &entry);
  out->reset();
  if (found == Lookup::kHit && !entry.first.empty()) *out = std::move(entry);
  return found;
}

RecordCache::Lookup RecordCache::floor(Family f, std::string_view key, std::string_view lower,
                                       Entry* out) {
  assert(key.size() >= kGroupPrefixBytes && lower.size() >= kGroupPrefixBytes);
  std::lock_guard lock(mu_);
  out->first.clear();
  std::string ckey = cache_key(f, key.substr(0, kGroupPrefixBytes));
  const Node* n = nullptr;
  const Lookup found = find_group_locked(ckey, &n);
  if (found != Lookup::kHit) return found;
  auto it = n->keys.upper_bound(key);
  // Nothing ≤ key in its group: the floor is the last key of an earlier group, if it is ≥ lower.
  const std::string_view lower_prefix = lower.substr(0, kGroupPrefixBytes);
  while (it == n->keys.begin()) {
    if (std::string_view(ckey).substr(1) <= lower_prefix) return Lookup::kHit;  // none ≥ lower
    // The previous prefix: decrement as a big-endian number (no borrow out: it is > lower's).
    for (size_t i = ckey.size(); i-- > 1;) {
      const auto b = static_cast<uint8_t>(ckey[i]);
      ckey[i] = static_cast<char>(b - 1);
      if (b != 0) break;
    }
    n = cached_group_locked(ckey);
    if (n == nullptr) return Lookup::kUncached;
    it = n->keys.end();
  }
  --it;
  if (std::string_view(it->first) >= lower) {
    out->first.assign(it->first);
    out->second.assign(it->second);
  }
  return Lookup::kHit;
}

RecordCache::Lookup RecordCache::range(Family f, std::string_view begin, std::string_view end,
                                       std::vector<Entry>* out) {
  size_t count = 0;
  const Lookup found = range(f, begin, end, out, &count);
  out->resize(count);
  return found;
}

RecordCache::Lookup RecordCache::range(Family f, std::string_view begin, std::string_view end,
                                       std::vector<Entry>* out, size_t* count) {
  assert(begin.size() >= kGroupPrefixBytes);
  std::lock_guard lock(mu_);
  *count = 0;
  std::string prefix(begin.substr(0, kGroupPrefixBytes));
  const Node* n = nullptr;
  const Lookup found = find_group_locked(cache_key(f, prefix), &n);
  if (found != Lookup::kHit) return found;
  for (auto it = n->keys.lower_bound(begin);;) {
    for (; it != n->keys.end(); ++it) {
      if (!end.empty() && std::string_view(it->first) >= end) return Lookup::kHit;
      if (*count < out->size()) {
        (*out)[*count].first.assign(it->first);
        (*out)[*count].second.assign(it->second);
      } else {
        out->emplace_back(it->first, it->second);
      }
      ++*count;
    }
    // On into the next group when the range reaches it: its least possible key is its prefix
    // padded with zero bytes to the length of the family's keys (see the header).
    prefix = group_end(prefix);
    if (prefix.empty()) return Lookup::kHit;
    if (!end.empty() && padded_at_least(prefix, std::max(prefix.size(), begin.size()), end))
      return Lookup::kHit;
    n = cached_group_locked(cache_key(f, prefix));
    if (n == nullptr) {
      *count = 0;
      return Lookup::kUncached;
    }
    it = n->keys.begin();
  }
}

void RecordCache::fill_group(Family f, std::string_view prefix,
                             std::optional<std::vector<Entry>> entries) {
  assert(prefix.size() == kGroupPrefixBytes);
  Node node;
  node.is_group = true;
  node.bytes = prefix.size() + kOverheadBytes;
  if (!entries || entries->size() > kGroupMaxKeys) {
    node.too_large = true;
  } else {
    for (Entry& e : *entries) {
      node.bytes += entry_bytes(e.first, e.second);
      node.keys.emplace_hint(node.keys.end(), std::move(e.first), std::move(e.second));
    }
  }
  std::string ckey = cache_key(f, prefix);
  std::lock_guard lock(mu_);
  group_families_ |= family_bit(f);
  if (recent_misses_.erase(ckey) > 0) std::erase(recent_order_, ckey);
  insert_locked(std::move(ckey), std::move(node));
}

void RecordCache::apply(const WriteSet& set) {
  std::lock_guard lock(mu_);
  std::string ckey, gkey;  // reused: a batch of thousands of keys need not allocate for each
  for (const WriteSet::Op& op : set.ops()) {
    const uint32_t bit = family_bit(op.family);
    // A family never looked up by key and without a cached group has nothing here to update.
    if (!(record_families_ & bit) && !(group_families_ & bit)) continue;
    if (op.kind == WriteSet::Kind::kDeleteRange) {  // rare in a cached family: drop it all
      forget_family_locked(op.family);
      continue;
    }
    if (record_families_ & bit) {
      ckey.assign(1, static_cast<char>(op.family));
      ckey.append(op.key);
      ++generation_locked(ckey);
      if (auto it = nodes_.find(ckey); it != nodes_.end() && !it->second.is_group) {
        if (op.is_delete() || op.value.size() > kRecordMaxBytes) {
          erase_locked(it);
        } else {
          it->second.value = op.value;
          resize_locked(it->second, entry_bytes(op.key, op.value) + 1);
        }
      }
    }
    if (!(group_families_ & bit) || op.key.size() < kGroupPrefixBytes) continue;
    gkey.assign(1, static_cast<char>(op.family));
    gkey.append(std::string_view(op.key).substr(0, kGroupPrefixBytes));
    auto g = nodes_.find(gkey);
    if (g == nodes_.end() || !g->second.is_group || g->second.too_large) continue;
    Node& group = g->second;
    size_t bytes = group.bytes;
    // An overwrite (most of a random-write batch) updates the value where it is: no map node
    // freed and made again.
    auto k = group.keys.lower_bound(op.key);
    const bool present = k != group.keys.end() && k->first == op.key;
    if (present) bytes -= entry_bytes(k->first, k->second);
    if (op.is_delete()) {
      if (present) group.keys.erase(k);
    } else {
      if (present) {
        k->second.assign(op.value);
      } else {
        group.keys.emplace_hint(k, op.key, op.value);
      }
      bytes += entry_bytes(op.key, op.value);
    }
    if (group.keys.size() > kGroupMaxKeys) {
      group.keys.clear();
      group.too_large = true;
      bytes = kGroupPrefixBytes + kOverheadBytes;
    }
    resize_locked(group, bytes);
  }
  evict_locked();
}

RecordCache::Stats RecordCache::stats() const {
  std::lock_guard lock(mu_);
  return Stats{hits_, misses_, bytes_, nodes_.size()};
}

}  // namespace raidfs::meta
