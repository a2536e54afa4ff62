// tlogcheck: checks a Cordon audit log with Go's golang.org/x/mod/sumdb/tlog
// and .../note (Debian's golang-golang-x-mod-dev), an implementation that
// shares no code with Cordon:
//   - the checkpoint exported with the tiles opens with note.Open under the key in log.identity;
//   - tlog.StoredHashes over the segment lines gives tree.hashes byte for byte,
//     and tlog.TreeHash the checkpoint's root;
//   - every hash tile equals tlog.ReadTileData, and tlog.TileHashReader (which
//     authenticates tiles against the root) proves records with tlog.ProveRecord;
//   - every proof printed by `cordon audit prove|consistency --json` passes
//     tlog.CheckRecord / tlog.CheckTree.
//
// usage: tlogcheck AUDIT_DIR TILES_DIR PROOFS_JSONL
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func mustHash(s string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != tlog.HashSize {
		fail("bad hash %q", s)
	}
	var h tlog.Hash
	copy(h[:], raw)
	return h
}

type tiles struct{ dir string }

func (t tiles) Height() int { return 8 }

// C2SP tlog-tiles paths: Go's sumdb paths without the height element.
func (t tiles) path(tile tlog.Tile) string {
	return filepath.Join(t.dir, strings.Replace(tile.Path(), "tile/8/", "tile/", 1))
}

func (t tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	var out [][]byte
	for _, tile := range ts {
		data, err := os.ReadFile(t.path(tile))
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}

func (t tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	if len(os.Args) != 4 {
		fail("usage: tlogcheck AUDIT_DIR TILES_DIR PROOFS_JSONL")
	}
	auditDir, tilesDir, proofsFile := os.Args[1], os.Args[2], os.Args[3]

	// The log's key and the exported checkpoint.
	identity, err := os.ReadFile(filepath.Join(auditDir, "log.identity"))
	if err != nil {
		fail("%v", err)
	}
	var vkey string
	for _, line := range strings.Split(string(identity), "\n") {
		if strings.HasPrefix(line, "checkpoint-key ") {
			vkey = strings.TrimPrefix(line, "checkpoint-key ")
		}
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("log key: %v", err)
	}
	msg, err := os.ReadFile(filepath.Join(tilesDir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("note.Open: %v", err)
	}
	body := strings.Split(n.Text, "\n")
	size, err := strconv.ParseInt(body[1], 10, 64)
	if err != nil {
		fail("checkpoint size %q", body[1])
	}
	root := mustHash(body[2])
	fmt.Printf("checkpoint: note.Open ok, %s size %d root %s\n", body[0], size, body[2])

	// Records: the segment lines in order.
	segs, _ := filepath.Glob(filepath.Join(auditDir, "audit-*.jsonl"))
	sort.Strings(segs)
	var records [][]byte
	for _, s := range segs {
		data, err := os.ReadFile(s)
		if err != nil {
			fail("%v", err)
		}
		for _, line := range bytes.SplitAfter(data, []byte("\n")) {
			if len(line) > 0 {
				records = append(records, bytes.TrimSuffix(line, []byte("\n")))
			}
		}
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i, r := range records {
		hs, err := tlog.StoredHashes(int64(i), r, reader)
		if err != nil {
			fail("StoredHashes: %v", err)
		}
		stored = append(stored, hs...)
	}
	onDisk, err := os.ReadFile(filepath.Join(auditDir, "tree.hashes"))
	if err != nil {
		fail("%v", err)
	}
	want := make([]byte, 0, len(stored)*tlog.HashSize)
	for _, h := range stored {
		want = append(want, h[:]...)
	}
	if !bytes.Equal(onDisk, want) {
		fail("tree.hashes (%d bytes) differs from tlog.StoredHashes over %d records (%d bytes)", len(onDisk), len(records), len(want))
	}
	fmt.Printf("tree.hashes: identical to tlog.StoredHashes over %d records (%d hashes)\n", len(records), len(stored))
	th, err := tlog.TreeHash(size, reader)
	if err != nil || th != root {
		fail("tlog.TreeHash(%d) = %v, checkpoint says %v", size, th, root)
	}
	fmt.Printf("root: tlog.TreeHash(%d) equals the checkpoint\n", size)

	// Tiles: byte for byte, then through the authenticating TileHashReader.
	count := 0
	for _, tile := range tlog.NewTiles(8, 0, size) {
		if tile.W != 1<<8 && tile.N<<8+int64(tile.W) != size>>(8*tile.L) {
			continue // only the widest partial tile is exported
		}
		data, err := tlog.ReadTileData(tile, reader)
		if err != nil {
			fail("ReadTileData: %v", err)
		}
		got, err := os.ReadFile(tiles{tilesDir}.path(tile))
		if err != nil || !bytes.Equal(got, data) {
			fail("tile %s differs from tlog.ReadTileData (%v)", tile.Path(), err)
		}
		count++
	}
	thr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tiles{tilesDir})
	for i := int64(0); i < size; i += 1 + size/37 {
		p, err := tlog.ProveRecord(size, i, thr)
		if err != nil {
			fail("ProveRecord(%d) from the tiles: %v", i, err)
		}
		if err := tlog.CheckRecord(p, size, root, i, tlog.RecordHash(records[i])); err != nil {
			fail("CheckRecord(%d) from the tiles: %v", i, err)
		}
	}
	fmt.Printf("tiles: %d equal tlog.ReadTileData; tlog.TileHashReader authenticated them and proved records\n", count)

	// Cordon's proofs.
	f, err := os.Open(proofsFile)
	if err != nil {
		fail("%v", err)
	}
	sc := bufio.NewScanner(f)
	inclusion, consistency := 0, 0
	for sc.Scan() {
		var p struct {
			Index   *int64   `json:"index"`
			Size    int64    `json:"size"`
			Root    string   `json:"root"`
			OldSize int64    `json:"old_size"`
			NewSize int64    `json:"new_size"`
			OldRoot string   `json:"old_root"`
			NewRoot string   `json:"new_root"`
			Proof   []string `json:"proof"`
		}
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			fail("proof line %q: %v", sc.Text(), err)
		}
		var hashes []tlog.Hash
		for _, h := range p.Proof {
			hashes = append(hashes, mustHash(h))
		}
		if p.Index != nil {
			want, _ := tlog.TreeHash(p.Size, reader)
			if mustHash(p.Root) != want {
				fail("prove %d --size %d: root differs from tlog.TreeHash", *p.Index, p.Size)
			}
			if err := tlog.CheckRecord(tlog.RecordProof(hashes), p.Size, want, *p.Index, tlog.RecordHash(records[*p.Index])); err != nil {
				fail("prove %d --size %d: tlog.CheckRecord: %v", *p.Index, p.Size, err)
			}
			inclusion++
		} else {
			oldWant, _ := tlog.TreeHash(p.OldSize, reader)
			newWant, _ := tlog.TreeHash(p.NewSize, reader)
			if mustHash(p.OldRoot) != oldWant || mustHash(p.NewRoot) != newWant {
				fail("consistency %d %d: roots differ from tlog.TreeHash", p.OldSize, p.NewSize)
			}
			if err := tlog.CheckTree(tlog.TreeProof(hashes), p.NewSize, newWant, p.OldSize, oldWant); err != nil {
				fail("consistency %d %d: tlog.CheckTree: %v", p.OldSize, p.NewSize, err)
			}
			consistency++
		}
	}
	fmt.Printf("proofs: %d inclusion (tlog.CheckRecord) and %d consistency (tlog.CheckTree) verified\n", inclusion, consistency)
	fmt.Println("tlogcheck: all passed")
}
