#pragma once
// Outputs (commands and alerts) <-> their wire forms (INTERFACES.md "Commands and alerts out").
//
// JSON, members always in this order, ", " and ": " separators, one line:
//   {"type": "command", "seq": 1, "ts": "2026-11-26T21:15:00.000Z", "rule": "bin-full",
//    "key": "bin-1", "target": "waste/centre", "action": "pickup", "params": {"bin": "bin-1"}}
//   {"type": "alert", "seq": 2, "ts": "2026-11-26T21:15:00.000Z", "rule": "bin-full",
//    "key": "bin-1", "state": "firing", "severity": "info", "summary": "Bin bin-1 at 90 %",
//    "labels": {}}
// Numbers in their shortest exact form (NaN/Inf -> null); strings escaped (control characters as
// \uXXXX or \n..., invalid UTF-8 replaced by U+FFFD); a kJson param is inserted as is (an empty
// one as null). FlatBuffers: schema/outputs.fbs, OutputMessage, identifier "VGOU".
//
// Pure functions, thread-safe (each call uses only its arguments). The encoders reuse the
// capacity of *out / the builder: no allocation per output in steady state.
#include <string>
#include <string_view>

#include <flatbuffers/flatbuffers.h>

#include "rules/output.h"

namespace vigie::codec {

// Replaces *out with the JSON text (no newline).
void EncodeOutputJson(const rules::Output& o, std::string* out);

// Clears the builder and finishes it with an OutputMessage (identifier "VGOU"); the payload is
// builder->GetBufferPointer() / GetSize().
void EncodeOutputFlatbuffers(const rules::Output& o, flatbuffers::FlatBufferBuilder* builder);

// Decoders for consumers, tools and tests. Return false if the text/buffer is not a valid
// output (bad JSON, unknown type, bad ts; unverifiable or unidentified buffer). ingest_ns is not
// on the wire and comes back 0. A JSON decode turns nested params into kJson (compact text).
bool DecodeOutputFlatbuffers(std::string_view buf, rules::Output* o);
bool DecodeOutputJson(std::string_view text, rules::Output* o);

// Replaces *out with the topic frame: the target for a command, "alert/<severity>/<rule>" for an
// alert.
void OutputTopic(const rules::Output& o, std::string* out);

}  // namespace vigie::codec
