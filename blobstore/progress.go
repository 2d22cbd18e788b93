package blobstore

import "io"

// ProgressReader returns a reader of r that calls progress before each
// read. Upload.Append writes what one read returned before it reads again,
// so when progress runs the bytes of every earlier read are in the
// session's file, where a mirror woken by progress finds them.
func ProgressReader(r io.Reader, progress func()) io.Reader {
	return progressReader{r: r, progress: progress}
}

type progressReader struct {
	r        io.Reader
	progress func()
}

func (p progressReader) Read(b []byte) (int, error) {
	p.progress()
	return p.r.Read(b)
}
