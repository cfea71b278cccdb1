#include "plugins/api/factory.h"
#include "plugins/api/sink.h"
#include "plugins/api/source.h"

namespace vigie::plugins {

const char* RejectReasonName(RejectReason r) {
  switch (r) {
    case RejectReason::kMalformed: return "malformed";
    case RejectReason::kOversize: return "oversize";
    case RejectReason::kMissingKind: return "missing_kind";
    case RejectReason::kBadTimestamp: return "bad_ts";
    case RejectReason::kCount_: break;
  }
  return "unknown";
}

SourceFactory::~SourceFactory() = default;
SinkFactory::~SinkFactory() = default;

}  // namespace vigie::plugins
